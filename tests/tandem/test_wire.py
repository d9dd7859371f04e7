import contextlib
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tandem import wire
from tandem.messages import (
    MESSAGE_TYPES,
    BridgeStatus,
    CameraFrame,
    Command,
    CommandReply,
    EpisodeEvent,
    LearnerMetrics,
    PolicyWeights,
    SafetyEvent,
    StepRecord,
    TeleopAction,
)
from tandem.messages.arm import ApplyAction, ArmReply, ArmRequest, ArmState
from tandem.wire import MAX_HEADER_BYTES, WireError, decode, encode, header_limit

RAW_DTYPES = [
    "bool",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
]


def _examples():
    """One instance per schema, each with the frames it carries in practice."""
    yy, xx = np.mgrid[0:24, 0:32]  # a smooth, camera-like image
    img = np.stack([xx * 8, yy * 10, (xx + yy) * 4], axis=-1).astype(np.uint8)
    return {
        "step": (
            StepRecord(
                seq=3,
                robot_id="r0",
                episode_id="ep-1",
                episode_kind="rollout",
                step=4,
                mode="intervention",
                state=[0.1] * 14,
                action=[0.5] * 7,
                policy_action=[0.1] * 7,
                human_action=[0.5] * 7,
                action_source="human",
                intervention=True,
                t_obs=1.5,
                policy_info={"proposal": "il", "q_il": 0.4, "q_rl": 0.2, "weights_version": 3},
            ),
            {"cam/front": img, "cam/wrist": img[::-1].copy()},
            ["cam/front"],
        ),
        "episode": (
            EpisodeEvent(
                robot_id="r0",
                episode_id="ep-1",
                episode_kind="demo",
                event="end",
                reason="time_limit",
                truncated=True,
                num_steps=200,
                final_state=[0.0] * 14,
            ),
            {"cam/front": img},
            [],
        ),
        "status": (
            BridgeStatus(
                robot_id="r0",
                robot="sim:lift",
                mode="estop",
                estop_reason="link lost",
                safety_events=[SafetyEvent(t_wall=1.0, kind="link_lost", detail="x")],
            ),
            {},
            [],
        ),
        "frame": (
            CameraFrame(robot_id="r0", camera="wrist", frame_seq=9, t_capture=2.0),
            {"image": img},
            ["image"],
        ),
        "cmd": (Command(body=TeleopAction(action=[0.0] * 7, t_input=1.0)), {}, []),
        "reply": (
            CommandReply(
                robot_id="r0",
                command_seq=1,
                command_type="start_rollout",
                ok=False,
                reason="no policy weights yet",
                mode="idle",
            ),
            {},
            [],
        ),
        "weights": (
            PolicyWeights(run_id="run", version=2, sha256="a" * 64, method="ibrl"),
            {"bundle": b"\x00\x01safetensors-bytes"},
            [],
        ),
        "arm_req": (
            ArmRequest(
                seq=5,
                body=ApplyAction(delta_pos_m=[0.01, 0, 0], delta_rot_rad=[0, 0, 0.1], gripper=1.0),
            ),
            {},
            [],
        ),
        "arm_rep": (
            ArmReply(
                req_seq=5,
                ok=True,
                state=ArmState(
                    ee_pos=[0.4, 0, 0.25],
                    ee_quat=[0, 1, 0, 0],
                    gripper=1.0,
                    state=[0.0] * 14,
                    t_state=3.0,
                ),
            ),
            {"cam/front": img},
            [],
        ),
        "metrics": (
            LearnerMetrics(
                run_id="run",
                update_step=10,
                env_steps=20,
                metrics={"critic/loss": 0.5, "ibrl/bc_selected_frac": float("nan")},
            ),
            {},
            [],
        ),
    }


EXAMPLES = _examples()


def test_every_topic_has_an_example():
    assert set(EXAMPLES) == set(MESSAGE_TYPES)


@pytest.mark.parametrize("topic", sorted(EXAMPLES))
def test_round_trip_every_schema(topic):
    msg, frames, jpeg = EXAMPLES[topic]
    decoded = decode(encode(msg, frames, jpeg=jpeg), expect=type(msg))
    assert decoded.topic == topic
    assert decoded.msg.model_dump(exclude={"frames"}, mode="json") == msg.model_dump(
        exclude={"frames"}, mode="json"
    )
    assert set(decoded.frames) == set(frames)
    for name, value in frames.items():
        got = decoded.frames[name]
        if isinstance(value, bytes):
            assert got == value
        elif name in jpeg:
            assert got.shape == value.shape and got.dtype == np.uint8
            assert np.abs(got.astype(int) - value.astype(int)).mean() < 6  # lossy, same image
        else:
            np.testing.assert_array_equal(got, value)


def test_jpeg_keeps_colour_channel_order():
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    msg = CameraFrame(robot_id="r", camera="c", frame_seq=0, t_capture=0.0)
    got = decode(encode(msg, {"image": red}, jpeg=["image"])).array("image")
    assert got[..., 0].mean() > 240 and got[..., 2].mean() < 15


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    arrays=st.dictionaries(
        st.text("abcdefgh/_", min_size=1, max_size=12),
        hnp.arrays(
            st.sampled_from(RAW_DTYPES),
            hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        ),
        max_size=4,
    )
)
def test_raw_arrays_round_trip_bit_exactly(arrays):
    msg = LearnerMetrics(run_id="r", update_step=0, env_steps=0, metrics={})
    decoded = decode(encode(msg, arrays))
    for name, value in arrays.items():
        got = decoded.frames[name]
        assert got.dtype == value.dtype and got.shape == value.shape
        assert got.tobytes() == np.ascontiguousarray(value).tobytes()


def _valid_parts():
    msg, frames, jpeg = EXAMPLES["step"]
    return encode(msg, frames, jpeg=jpeg)


def _header(parts):
    return json.loads(parts[1])


def _with_header(parts, header):
    return [parts[0], json.dumps(header).encode(), *parts[2:]]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p[:1], "truncated"),
        (lambda p: p[:-1], "declares 2 frames"),
        (lambda p: [*p, b"extra"], "declares 2 frames"),
        (lambda p: [b"nope", *p[1:]], "unknown topic"),
        (lambda p: [b"\xff\xfe", *p[1:]], "not ASCII"),
        (lambda p: [p[0], b"{not json", *p[2:]], "not valid JSON"),
        (lambda p: [p[0], b"[1, 2]", *p[2:]], "JSON object"),
        (lambda p: _with_header(p, {**_header(p), "v": 99}), "unsupported schema version 99"),
        (lambda p: _with_header(p, {**_header(p), "action": [0.0] * 6}), "action"),
        (lambda p: _with_header(p, {**_header(p), "bogus": 1}), "bogus"),
        (lambda p: [*p[:2], p[2][:-10], p[3]], "header says"),
        (lambda p: [*p[:2], p[2], p[3] + b"xx"], "header says"),
        (lambda p: [*p[:2], b"\x00" * len(p[2]), p[3]], "not a decodable JPEG"),
    ],
)
def test_malformed_messages_raise_wire_error(mutate, message):
    with pytest.raises(WireError, match=message):
        decode(mutate(_valid_parts()))


def _set_frame(parts, index, **changes):
    header = _header(parts)
    header["frames"][index].update(changes)
    return _with_header(parts, header)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dtype": "float64"}, "needs"),
        ({"dtype": "object"}, "dtype"),
        ({"dtype": "complex128"}, "dtype"),
        ({"shape": [24, 32, 4]}, "needs"),
        ({"shape": [-1, 32, 3]}, "non-negative"),
        ({"shape": None}, "needs dtype and shape"),
        ({"encoding": "pickle"}, "encoding"),
    ],
)
def test_wrong_dtype_or_shape_in_header(changes, message):
    parts = _set_frame(_valid_parts(), 1, **changes)  # frame 1 is the raw wrist image
    with pytest.raises(WireError, match=message):
        decode(parts)


def test_oversized_frames_are_refused():
    with pytest.raises(WireError, match="exceeds the limit"):
        decode(_valid_parts(), max_frame_bytes=1000)


def test_expect_refuses_other_topics():
    with pytest.raises(WireError, match="expected topic 'status'"):
        decode(_valid_parts(), expect=BridgeStatus)


def test_encode_refuses_what_cannot_travel():
    msg = LearnerMetrics(run_id="r", update_step=0, env_steps=0, metrics={})
    with pytest.raises(WireError, match="cannot travel"):
        encode(msg, {"x": np.array(["a"], dtype=object)})
    with pytest.raises(WireError, match="JPEG needs"):
        encode(msg, {"x": np.zeros((4, 4, 3), np.float32)}, jpeg=["x"])
    with pytest.raises(WireError, match="not among the frames"):
        encode(msg, {}, jpeg=["x"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_random_multipart_only_ever_raises_wire_error(parts):
    with contextlib.suppress(WireError):
        decode(parts)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    topic=st.sampled_from(sorted(MESSAGE_TYPES)),
    header=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    ),
    frames=st.lists(st.binary(max_size=32), max_size=3),
)
def test_random_headers_only_ever_raise_wire_error(topic, header, frames):
    with contextlib.suppress(WireError):
        decode([topic.encode(), json.dumps(header).encode(), *frames])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, 1),
    key=st.sampled_from(["name", "encoding", "nbytes", "dtype", "shape"]),
    value=st.none()
    | st.integers(-5, 10**12)
    | st.text(max_size=6)
    | st.lists(st.integers(-3, 10**6), max_size=9),
)
def test_mutated_frame_specs_only_ever_raise_wire_error(index, key, value):
    parts = _set_frame(_valid_parts(), index, **{key: value})
    with contextlib.suppress(WireError):
        decode(parts)


def test_socket_helpers_over_real_zmq():
    import zmq

    ctx = zmq.Context.instance()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    try:
        msg, frames, jpeg = EXAMPLES["frame"]
        wire.send(push, msg, frames, jpeg=jpeg)
        assert pull.poll(5000)
        got = wire.recv(pull, expect=CameraFrame)
        assert got.msg.camera == "wrist" and got.array("image").shape == (24, 32, 3)
    finally:
        push.close(0)
        pull.close(0)


def test_bytes_frames_are_not_copied():
    """A large blob (a policy bundle) decodes to the sender's bytes or a read-only view."""
    msg = PolicyWeights(run_id="run", version=1, sha256="a" * 64, method="ibrl")
    parts = encode(msg, {"bundle": b"\x00" * 1000})
    assert decode(parts).blob("bundle") is parts[2]
    view = decode([bytearray(p) for p in parts]).blob("bundle")  # e.g. a zmq.Frame buffer
    assert isinstance(view, memoryview) and view.readonly and bytes(view) == parts[2]


def test_header_limits_are_checked_before_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A header declaring 60k frames is refused on the count, before pydantic sees it
    (full validation of such a header takes seconds: the cost an attacker would buy)."""
    spec = {"name": "x", "encoding": "bytes", "nbytes": 0}
    header = {"v": 1, "frames": [spec] * 60_000, "body": {"type": "ping"}}
    raw = json.dumps(header).encode()
    validated: list[type] = []
    real = BridgeStatus.model_validate.__func__  # type: ignore[attr-defined]

    def counting(cls: type, data: object, **kw: object) -> object:
        validated.append(cls)
        return real(cls, data, **kw)

    monkeypatch.setattr(BridgeStatus, "model_validate", classmethod(counting))
    with pytest.raises(WireError, match="declares 60000 frames, message has 0"):
        decode([b"status", raw])
    assert validated == []
    with pytest.raises(WireError, match=f"exceeds {Command.MAX_HEADER_BYTES}"):
        decode([b"cmd", raw], expect=Command)  # a command header is refused on its size
    assert header_limit(Command) == 16 * 1024 and header_limit(StepRecord) == MAX_HEADER_BYTES
