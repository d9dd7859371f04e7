"""The browser control protocol: JSON messages over the ``/ws/control`` WebSocket.

These are not ZMQ messages (they are not in ``MESSAGE_TYPES``); they are the
contract between the web pages and the server. Every message is one JSON
object with a ``type`` discriminator, ``v`` (protocol version) and ``seq``
(per-sender, monotonic). Unknown fields are refused. Times named ``t_input`` /
``t_client`` are the browser's epoch milliseconds
(``performance.timeOrigin + performance.now()``); ``t_server`` is the server's
epoch milliseconds. Frames and units: see docs/control_protocol.md.

``parse_client_message(text)`` is the one entry point for incoming text; it
raises ``ControlProtocolError`` with a precise message for anything malformed.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from tandem.messages.base import ControlMode
from tandem.messages.commands import MAX_EVAL_EPISODES

CONTROL_PROTOCOL_VERSION = 1
MAX_MESSAGE_CHARS = 65536
MAX_AXES = 8
MAX_BUTTONS = 20
MAX_KEYS = 32

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Signed = Annotated[float, Field(ge=-1.0, le=1.0)]
ClientMs = Annotated[float, Field(ge=0.0, description="Browser epoch time, ms.")]
KeyCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,32}$")]

COMMAND_NAMES = (
    "start_demo",
    "start_rollout",
    "start_eval",
    "stop_eval",
    "take_over",
    "hand_back",
    "success",
    "failure",
    "discard",
    "reset_done",
    "estop",
    "clear_estop",
)
CommandName = Literal[
    "start_demo",
    "start_rollout",
    "start_eval",
    "stop_eval",
    "take_over",
    "hand_back",
    "success",
    "failure",
    "discard",
    "reset_done",
    "estop",
    "clear_estop",
]


class ControlProtocolError(ValueError):
    """A client message is malformed; ``str(err)`` says exactly what and where.

    ``ref_seq`` is the message's ``seq`` when it could be read, for the error reply.
    """

    def __init__(self, message: str, ref_seq: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ref_seq = ref_seq


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class ControlMessage(_Strict):
    """Fields of every control-protocol message."""

    v: int = Field(CONTROL_PROTOCOL_VERSION, description="Protocol version.")
    seq: int = Field(0, ge=0, le=2**53, description="Per-sender monotonic sequence number.")

    @field_validator("v")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != CONTROL_PROTOCOL_VERSION:
            raise ValueError(
                f"unsupported protocol version {v} (this server speaks {CONTROL_PROTOCOL_VERSION})"
            )
        return v


# ---- browser -> server -------------------------------------------------------------


class Claim(ControlMessage):
    """Ask for the control lease (one operator drives the robot at a time)."""

    type: Literal["claim"] = "claim"
    operator: str | None = Field(None, min_length=1, max_length=64, description="Display name.")


class Release(ControlMessage):
    """Give the control lease back."""

    type: Literal["release"] = "release"


class GamepadButton(_Strict):
    pressed: bool
    value: Unit = 0.0


class GamepadInput(ControlMessage):
    """One ``navigator.getGamepads()`` snapshot (standard mapping: y axes positive down)."""

    type: Literal["gamepad"] = "gamepad"
    axes: list[Signed] = Field(default_factory=list, max_length=MAX_AXES)
    buttons: list[GamepadButton] = Field(default_factory=list, max_length=MAX_BUTTONS)
    id: str | None = Field(None, max_length=200, description="Gamepad.id, for display.")
    mapping: str = Field(
        "standard", max_length=32, description="Gamepad.mapping; only 'standard' is mapped."
    )
    t_input: ClientMs


class XRButtons(_Strict):
    squeeze: Unit = 0.0
    trigger: Unit = 0.0
    a: Unit = Field(0.0, description="A (right hand) or X (left hand).")
    b: Unit = Field(0.0, description="B (right hand) or Y (left hand).")


class XRController(_Strict):
    """Grip pose in the WebXR ``local-floor`` space: RUB (x right, y up, z back), metres;
    orientation quaternion in WebXR order (x, y, z, w), unit norm (+-1 %)."""

    hand: Literal["left", "right"]
    position: list[float] | None = Field(None, min_length=3, max_length=3)
    orientation: list[float] | None = Field(None, min_length=4, max_length=4)
    buttons: XRButtons = Field(default_factory=XRButtons)
    tracked: bool = Field(True, description="A grip pose was available this frame.")
    emulated: bool = Field(False, description="XRPose.emulatedPosition (estimated, not tracked).")

    @field_validator("position")
    @classmethod
    def _position(cls, p: list[float] | None) -> list[float] | None:
        if p is not None and any(abs(x) > 1000.0 for x in p):
            raise ValueError(f"position must be within 1000 m of the origin, got {p}")
        return p

    @field_validator("orientation")
    @classmethod
    def _unit(cls, q: list[float] | None) -> list[float] | None:
        if q is not None:
            norm = math.sqrt(sum(x * x for x in q))
            if abs(norm - 1.0) > 0.01:
                raise ValueError(
                    f"orientation must be a unit quaternion (x, y, z, w), norm {norm:.4g}"
                )
        return q

    @model_validator(mode="after")
    def _pose_when_tracked(self) -> XRController:
        if self.tracked and (self.position is None or self.orientation is None):
            raise ValueError("a tracked controller needs both position and orientation")
        return self


class XRInput(ControlMessage):
    """One WebXR frame of the driving controller."""

    type: Literal["xr"] = "xr"
    controller: XRController
    t_input: ClientMs


class XREvent(ControlMessage):
    """A WebXR session event; every kind except set_forward is a safety release."""

    type: Literal["xr_event"] = "xr_event"
    kind: Literal["recenter", "visibility", "tracking_lost", "set_forward"]
    state: Literal["visible", "visible-blurred", "hidden"] | None = Field(
        None, description="XRSession.visibilityState, for kind=visibility."
    )
    t_input: ClientMs


class KeyboardInput(ControlMessage):
    """The set of keys held (``KeyboardEvent.code`` names, e.g. KeyW, ArrowUp, Space)."""

    type: Literal["keyboard"] = "keyboard"
    keys: list[KeyCode] = Field(default_factory=list, max_length=MAX_KEYS)
    t_input: ClientMs

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[str]) -> list[str]:
        return sorted(set(keys))


class CommandRequest(ControlMessage):
    """An operator command; answered with an ``ack`` carrying this message's seq."""

    type: Literal["command"] = "command"
    name: CommandName
    reason: str | None = Field(None, max_length=500)
    episodes: int | None = Field(
        None, ge=1, le=MAX_EVAL_EPISODES, description="start_eval only: episodes in the batch."
    )

    @model_validator(mode="after")
    def _episodes_for_eval(self) -> CommandRequest:
        if self.name == "start_eval" and self.episodes is None:
            raise ValueError("start_eval needs 'episodes' (how many evaluation episodes, >= 1)")
        if self.name != "start_eval" and self.episodes is not None:
            raise ValueError(f"'episodes' is only for start_eval, not {self.name}")
        return self


class ClientPing(ControlMessage):
    """Round-trip probe; answered with a ``pong`` echoing ``t_client``."""

    type: Literal["ping"] = "ping"
    t_client: ClientMs


ClientMessage = Annotated[
    Claim
    | Release
    | GamepadInput
    | XRInput
    | XREvent
    | KeyboardInput
    | CommandRequest
    | ClientPing,
    Field(discriminator="type"),
]
CLIENT_TYPES: dict[str, type[ControlMessage]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        Claim,
        Release,
        GamepadInput,
        XRInput,
        XREvent,
        KeyboardInput,
        CommandRequest,
        ClientPing,
    )
}
client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# ---- server -> browser -------------------------------------------------------------


class Ack(ControlMessage):
    """Answer to a ``command``: accepted or refused with a reason; the mode after it."""

    type: Literal["ack"] = "ack"
    ref_seq: int = Field(ge=0, description="seq of the command answered.")
    name: CommandName
    ok: bool
    reason: str = ""
    mode: ControlMode | None = Field(None, strict=False, description="Control mode after it.")


class Lease(ControlMessage):
    """Who holds the control lease (sent on change and after claim/release)."""

    type: Literal["lease"] = "lease"
    holder: str | None = Field(None, description="Holder's display name; None: free.")
    you_hold: bool
    expires_in_s: float | None = Field(None, ge=0, description="Seconds left without input.")


class Pong(ControlMessage):
    type: Literal["pong"] = "pong"
    t_client: ClientMs
    t_server: float = Field(ge=0, description="Server epoch time when answering, ms.")


class ErrorReply(ControlMessage):
    """A client message was refused; ``message`` says why."""

    type: Literal["error"] = "error"
    message: str
    ref_seq: int | None = Field(None, description="seq of the offending message, if known.")


ServerMessage = Annotated[Ack | Lease | Pong | ErrorReply, Field(discriminator="type")]
server_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


# ---- parsing -----------------------------------------------------------------------


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse and validate one browser message.

    Raises ``ControlProtocolError`` (and nothing else) for: text that is too long
    or not UTF-8, invalid JSON (including NaN/Infinity), a non-object, a missing
    or unknown ``type``, and any invalid, missing or unknown field.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ControlProtocolError(f"message is not valid UTF-8: {exc}") from None
    if not isinstance(text, str):
        raise ControlProtocolError(f"message must be text, got {type(text).__name__}")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ControlProtocolError(
            f"message too long: {len(text)} characters (limit {MAX_MESSAGE_CHARS})"
        )
    data = _load_json(text)
    if not isinstance(data, dict):
        raise ControlProtocolError(f"message must be a JSON object, got {_json_kind(data)}")
    ref_seq = data.get("seq") if type(data.get("seq")) is int else None
    kind = data.get("type")
    if kind is None:
        raise ControlProtocolError("message has no 'type' field", ref_seq)
    cls = CLIENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(CLIENT_TYPES)
        raise ControlProtocolError(
            f"unknown message type {kind!r} (expected one of: {known})", ref_seq
        )
    try:
        return cls.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise ControlProtocolError(_describe(kind, exc), ref_seq) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ControlProtocolError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ControlProtocolError(f"invalid JSON: {exc}") from None


def _json_kind(data: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(data), "a number")


def _describe(kind: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "<message>"
        value = err.get("input")
        shown = ""
        if err["type"] != "missing" and not isinstance(value, dict | list):
            shown = f" (got {_short(value)})"
        parts.append(f"{where}: {err['msg']}{shown}")
    return f"invalid {kind!r} message: " + "; ".join(parts)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
