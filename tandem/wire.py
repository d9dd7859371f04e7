"""ZMQ multipart codec: ``[topic, header_json, *frames]``.

The header is the message's ``model_dump_json``; its ``frames`` list describes
every binary frame that follows (raw numpy arrays, JPEG images or opaque
bytes). Decoding validates everything and raises ``WireError`` with a precise
message; nothing is ever pickled. The cheap limits come first (frame count, the
header size the message type allows, the declared frame count), so a hostile
message costs little before it is refused.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_args

import numpy as np
from pydantic import ValidationError

from tandem.messages import MESSAGE_TYPES, SCHEMA_VERSION, FrameSpec, Message
from tandem.messages.base import DType

MAX_FRAMES = 64
MAX_HEADER_BYTES = 4 * 1024 * 1024
MAX_FRAME_BYTES = 512 * 1024 * 1024
# ZMQ_MAXMSGSIZE (per frame; a peer sending a larger one is disconnected) by traffic kind:
SMALL_MSG_BYTES = 64 * 1024  # commands, replies, arm requests
MEDIA_MSG_BYTES = 64 * 1024 * 1024  # observations and steps with raw or JPEG images
_DTYPES = {name: np.dtype(name) for name in get_args(DType)}

M = TypeVar("M", bound=Message)
FrameValue = np.ndarray | bytes | memoryview
Buffer = bytes | bytearray | memoryview


class WireError(ValueError):
    """A message could not be encoded or decoded; the text says exactly why."""


@dataclass
class Decoded:
    """A decoded message: its topic, validated model and binary frames by name."""

    topic: str
    msg: Message
    frames: dict[str, FrameValue] = field(default_factory=dict)

    def array(self, name: str) -> np.ndarray:
        value = self.frames.get(name)
        if not isinstance(value, np.ndarray):
            raise WireError(f"{self.topic} message has no array frame {name!r}")
        return value

    def blob(self, name: str) -> bytes | memoryview:
        """A ``bytes`` frame: the sender's part itself, or a read-only view of it (no copy)."""
        value = self.frames.get(name)
        if not isinstance(value, bytes | memoryview):
            raise WireError(f"{self.topic} message has no bytes frame {name!r}")
        return value

    def images(self, prefix: str = "cam/") -> dict[str, np.ndarray]:
        """Array frames whose name starts with ``prefix``, keyed without it."""
        return {
            name[len(prefix) :]: value
            for name, value in self.frames.items()
            if name.startswith(prefix) and isinstance(value, np.ndarray)
        }


def encode(
    msg: Message,
    frames: Mapping[str, FrameValue] | None = None,
    *,
    jpeg: Collection[str] = (),
    jpeg_quality: int = 90,
) -> list[bytes]:
    """Encode ``msg`` with named binary frames; names in ``jpeg`` are JPEG-compressed.

    Arrays are sent raw (C order) unless named in ``jpeg`` (uint8 H x W x 3 RGB
    or H x W grey). ``bytes`` values travel as opaque frames.
    """
    frames = frames or {}
    unknown = set(jpeg) - set(frames)
    if unknown:
        raise WireError(f"jpeg names {sorted(unknown)} are not among the frames")
    if len(frames) > MAX_FRAMES:
        raise WireError(f"too many frames: {len(frames)} > {MAX_FRAMES}")
    specs, payloads = [], []
    for name, value in frames.items():
        spec, payload = _encode_frame(name, value, name in jpeg, jpeg_quality)
        specs.append(spec)
        payloads.append(payload)
    header = msg.model_copy(update={"frames": specs}).model_dump_json().encode()
    return [msg.TOPIC.encode(), header, *payloads]


def decode(
    parts: Sequence[Buffer],
    *,
    expect: type[M] | None = None,
    max_frame_bytes: int = MAX_FRAME_BYTES,
) -> Decoded:
    """Decode and validate a multipart message; raise ``WireError`` on any fault."""
    try:
        return _decode(parts, expect, max_frame_bytes)
    except WireError:
        raise
    except Exception as exc:  # a codec bug must still surface as the typed error
        raise WireError(f"undecodable message: {type(exc).__name__}: {exc}") from exc


def _decode(parts: Sequence[Buffer], expect: type[M] | None, max_frame_bytes: int) -> Decoded:
    if len(parts) < 2:
        raise WireError(f"truncated message: need topic and header frames, got {len(parts)}")
    if len(parts) > MAX_FRAMES + 2:
        raise WireError(f"too many frames: {len(parts) - 2} > {MAX_FRAMES}")
    topic = _topic(parts[0])
    cls = MESSAGE_TYPES[topic]
    if expect is not None and cls is not expect:
        raise WireError(f"expected topic {expect.TOPIC!r}, got {topic!r}")
    msg = _header(topic, cls, parts[1], len(parts) - 2)
    names = [spec.name for spec in msg.frames]
    if len(set(names)) != len(names):
        raise WireError(f"{topic}: duplicate frame names in {names}")
    frames = {
        spec.name: _decode_frame(topic, spec, memoryview(part), max_frame_bytes)
        for spec, part in zip(msg.frames, parts[2:], strict=True)
    }
    return Decoded(topic, msg, frames)


def _topic(raw: Buffer) -> str:
    try:
        topic = bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        raise WireError(f"topic is not ASCII: {bytes(raw)[:32]!r}") from None
    if topic not in MESSAGE_TYPES:
        raise WireError(f"unknown topic {topic!r}; known: {sorted(MESSAGE_TYPES)}")
    return topic


def _header(topic: str, cls: type[Message], raw: Buffer, nframes: int) -> Message:
    """Parse and validate the header; the cheap limits come before full validation."""
    limit = header_limit(cls)
    if len(raw) > limit:
        raise WireError(f"{topic}: header of {len(raw)} bytes exceeds {limit}")
    try:
        data: Any = json.loads(bytes(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"{topic}: header is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError(f"{topic}: header must be a JSON object, got {type(data).__name__}")
    declared = data.get("frames", [])
    if not isinstance(declared, list) or len(declared) != nframes:
        count = len(declared) if isinstance(declared, list) else type(declared).__name__
        raise WireError(f"{topic}: header declares {count} frames, message has {nframes}")
    version = data.get("v")
    if version != SCHEMA_VERSION:
        raise WireError(
            f"{topic}: unsupported schema version {version!r} (this build speaks {SCHEMA_VERSION})"
        )
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise WireError(f"{topic}: invalid header: {_errors(exc)}") from None


def header_limit(cls: type[Message]) -> int:
    """The largest header ``cls`` accepts: its ``MAX_HEADER_BYTES``, else the codec's."""
    return int(getattr(cls, "MAX_HEADER_BYTES", MAX_HEADER_BYTES))


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    )


def _encode_frame(
    name: str, value: FrameValue, as_jpeg: bool, quality: int
) -> tuple[FrameSpec, bytes]:
    if isinstance(value, bytes | bytearray | memoryview):
        payload = bytes(value)
        return FrameSpec(name=name, encoding="bytes", nbytes=len(payload)), payload
    if not isinstance(value, np.ndarray):
        raise WireError(
            f"frame {name!r}: expected numpy array or bytes, got {type(value).__name__}"
        )
    if value.dtype.name not in _DTYPES:
        raise WireError(f"frame {name!r}: dtype {value.dtype} cannot travel; use {sorted(_DTYPES)}")
    if as_jpeg:
        payload = _jpeg_bytes(name, value, quality)
        encoding = "jpeg"
    else:
        payload = np.ascontiguousarray(value).tobytes()
        encoding = "raw"
    spec = FrameSpec(
        name=name,
        encoding=encoding,
        nbytes=len(payload),
        dtype=value.dtype.name,
        shape=list(value.shape),
    )
    return spec, payload


def _jpeg_bytes(name: str, image: np.ndarray, quality: int) -> bytes:
    if image.dtype != np.uint8 or not _is_image_shape(image.shape):
        raise WireError(
            f"frame {name!r}: JPEG needs uint8 HxWx3 or HxW, got {image.dtype} {image.shape}"
        )
    import cv2  # only JPEG frames need OpenCV (a robot PC without cameras has none)

    bgr = image[..., ::-1] if image.ndim == 3 else image
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise WireError(f"frame {name!r}: JPEG encoding failed")
    return buf.tobytes()


def _is_image_shape(shape: Sequence[int]) -> bool:
    return (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)) and all(d > 0 for d in shape)


def _decode_frame(topic: str, spec: FrameSpec, part: memoryview, max_bytes: int) -> FrameValue:
    where = f"{topic}: frame {spec.name!r}"
    if len(part) > max_bytes:
        raise WireError(f"{where}: {len(part)} bytes exceeds the limit of {max_bytes}")
    if len(part) != spec.nbytes:
        raise WireError(f"{where}: header says {spec.nbytes} bytes, frame has {len(part)}")
    if spec.encoding == "bytes":
        # No copy: copying a large blob (a 100+ MB policy bundle) into new bytes holds the
        # GIL for hundreds of milliseconds and stalls every other thread, the control loop too.
        source = part.obj
        if isinstance(source, bytes) and len(source) == len(part):
            return source
        return part.toreadonly()
    if spec.dtype is None or spec.shape is None:
        raise WireError(f"{where}: {spec.encoding} frame needs dtype and shape")
    if spec.encoding == "jpeg":
        return _decode_jpeg(where, spec, part)
    dtype = _DTYPES[spec.dtype]
    expected = int(np.prod(spec.shape, dtype=np.int64)) * dtype.itemsize
    if expected != len(part):
        raise WireError(
            f"{where}: {spec.dtype} {spec.shape} needs {expected} bytes, got {len(part)}"
        )
    return np.frombuffer(part, dtype=dtype).reshape(spec.shape)


def _decode_jpeg(where: str, spec: FrameSpec, part: memoryview) -> np.ndarray:
    assert spec.shape is not None
    if spec.dtype != "uint8" or not _is_image_shape(spec.shape):
        raise WireError(
            f"{where}: JPEG frame must be uint8 HxWx3 or HxW, header says {spec.dtype} {spec.shape}"
        )
    import cv2

    flag = cv2.IMREAD_COLOR if len(spec.shape) == 3 else cv2.IMREAD_GRAYSCALE
    image = cv2.imdecode(np.frombuffer(part, dtype=np.uint8), flag)
    if image is None:
        raise WireError(f"{where}: not a decodable JPEG")
    if list(image.shape) != spec.shape:
        raise WireError(f"{where}: JPEG decodes to {list(image.shape)}, header says {spec.shape}")
    return image[..., ::-1].copy() if image.ndim == 3 else image


def send(
    socket: Any,
    msg: Message,
    frames: Mapping[str, FrameValue] | None = None,
    *,
    jpeg: Collection[str] = (),
    flags: int = 0,
) -> None:
    """Encode and send one message on a ZMQ socket."""
    socket.send_multipart(encode(msg, frames, jpeg=jpeg), flags=flags, copy=False)


def recv(socket: Any, *, expect: type[M] | None = None, flags: int = 0) -> Decoded:
    """Receive and decode one message from a ZMQ socket (raises ``WireError``)."""
    return decode(socket.recv_multipart(flags=flags, copy=True), expect=expect)
