"""The browser control protocol (tandem.messages.control): models and the parser."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tandem.messages import MESSAGE_TYPES
from tandem.messages.control import (
    CLIENT_TYPES,
    COMMAND_NAMES,
    Ack,
    Claim,
    ClientPing,
    CommandRequest,
    ControlProtocolError,
    ErrorReply,
    GamepadButton,
    GamepadInput,
    KeyboardInput,
    Lease,
    Pong,
    Release,
    XRButtons,
    XRController,
    XREvent,
    XRInput,
    parse_client_message,
    server_adapter,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "control_protocol.md"

VALID = [
    Claim(seq=1, operator="ana"),
    Release(seq=2),
    GamepadInput(
        seq=3,
        axes=[0.0, -0.5, 1.0, -1.0],
        buttons=[GamepadButton(pressed=True, value=1.0), GamepadButton(pressed=False)],
        id="Xbox Wireless Controller (STANDARD GAMEPAD)",
        t_input=1.7e12,
    ),
    XRInput(
        seq=4,
        controller=XRController(
            hand="right",
            position=[0.1, 1.2, -0.3],
            orientation=[0.0, 0.0, 0.0, 1.0],
            buttons=XRButtons(squeeze=1.0, trigger=0.25),
        ),
        t_input=12.5,
    ),
    XRInput(controller=XRController(hand="left", tracked=False), t_input=0),
    XREvent(kind="visibility", state="hidden", t_input=1.0),
    KeyboardInput(keys=["KeyW", "Space"], t_input=2.0),
    ClientPing(seq=9, t_client=123.0),
    *[
        CommandRequest(name=name, episodes=3 if name == "start_eval" else None)
        for name in COMMAND_NAMES
    ],
]


@pytest.mark.parametrize("msg", VALID, ids=lambda m: m.type)
def test_valid_messages_round_trip(msg) -> None:
    assert parse_client_message(msg.model_dump_json()) == msg
    assert parse_client_message(msg.model_dump_json().encode()) == msg


def test_every_client_type_is_covered_and_not_a_zmq_topic() -> None:
    assert {m.type for m in VALID} == set(CLIENT_TYPES)
    assert not set(CLIENT_TYPES) & set(MESSAGE_TYPES)
    assert "ack" not in MESSAGE_TYPES and "lease" not in MESSAGE_TYPES


def test_server_messages_validate() -> None:
    for msg in [
        Ack(seq=1, ref_seq=7, name="take_over", ok=False, reason="no rollout running", mode="idle"),
        Lease(holder="ana", you_hold=True, expires_in_s=4.5),
        Pong(t_client=1.0, t_server=2.0),
        ErrorReply(message="unknown message type 'x'", ref_seq=3),
    ]:
        assert server_adapter.validate_json(msg.model_dump_json()) == msg


def test_minimal_message_defaults() -> None:
    msg = parse_client_message('{"type": "release"}')
    assert isinstance(msg, Release) and msg.v == 1 and msg.seq == 0
    keys = parse_client_message('{"type":"keyboard","keys":["Space","KeyA","KeyA"],"t_input":1}')
    assert keys.keys == ["KeyA", "Space"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", r"invalid JSON at line 1 column 2"),
        ('{"type": "ping", "t_client": NaN}', r"NaN is not allowed"),
        ("[1, 2]", r"must be a JSON object, got an array"),
        ('"claim"', r"got a string"),
        ('{"seq": 4}', r"no 'type' field"),
        ('{"type": "teleport"}', r"unknown message type 'teleport' \(expected one of: claim, "),
        ('{"type": 7}', r"unknown message type 7"),
        ('{"type": "ping"}', r"invalid 'ping' message: t_client: Field required"),
        ('{"type": "ping", "t_client": 1, "x": 1}', r"x: Extra inputs are not permitted"),
        ('{"type": "ping", "t_client": "1"}', r"t_client: Input should be a valid number"),
        ('{"type": "ping", "t_client": 1e999}', r"t_client: Input should be a finite number"),
        ('{"type": "ping", "t_client": 1, "v": 2}', r"unsupported protocol version 2"),
        ('{"type": "ping", "t_client": 1, "seq": -1}', r"seq: Input should be greater"),
        ('{"type": "claim", "seq": true}', r"seq: Input should be a valid integer"),
        ('{"type": "gamepad", "axes": [0, 1.5], "t_input": 1}', r"axes\.1: .*less than or equal"),
        ('{"type": "gamepad", "axes": [0,0,0,0,0,0,0,0,0], "t_input": 1}', r"at most 8 items"),
        (
            '{"type": "gamepad", "buttons": [{"pressed": 1}], "t_input": 1}',
            r"buttons\.0\.pressed: Input should be a valid boolean",
        ),
        ('{"type": "command", "name": "explode"}', r"name: Input should be 'start_demo'"),
        ('{"type": "keyboard", "keys": ["a b"], "t_input": 1}', r"keys\.0: String should match"),
        ('{"type": "xr_event", "kind": "bored", "t_input": 1}', r"kind: Input should be"),
        (
            '{"type":"xr","controller":{"hand":"right"},"t_input":1}',
            r"controller: Value error, a tracked controller needs both position and orientation",
        ),
        (
            '{"type":"xr","controller":{"hand":"right","position":[0,0,0],'
            '"orientation":[0,0,0,2]},"t_input":1}',
            r"controller\.orientation: .*unit quaternion",
        ),
        (
            '{"type":"xr","controller":{"hand":"right","position":[0,0],'
            '"orientation":[0,0,0,1]},"t_input":1}',
            r"controller\.position: List should have at least 3 items",
        ),
    ],
)
def test_precise_errors(text: str, expected: str) -> None:
    with pytest.raises(ControlProtocolError, match=expected):
        parse_client_message(text)


def test_ref_seq_is_reported_when_readable() -> None:
    with pytest.raises(ControlProtocolError) as info:
        parse_client_message('{"type": "ping", "seq": 41}')
    assert info.value.ref_seq == 41


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "[" * 5000 + "]" * 5000,
        '{"type": "ping", "t_client": ' + "9" * 5000 + "}",
        "x" * 70_000,
        b"\xff\xfe",
        "",
    ],
    ids=["deep-unclosed", "deep-nesting", "huge-int", "too-long", "not-utf8", "empty"],
)
def test_hostile_inputs_raise_the_typed_error(text) -> None:
    with pytest.raises(ControlProtocolError):
        parse_client_message(text)


def _parse_or_typed_error(text) -> None:
    try:
        msg = parse_client_message(text)
    except ControlProtocolError as exc:
        assert str(exc)
    else:
        assert msg.type in CLIENT_TYPES


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_text_never_raises_another_exception(text) -> None:
    _parse_or_typed_error(text)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(list(CLIENT_TYPES)),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_raises_another_exception(value) -> None:
    _parse_or_typed_error(json.dumps(value))


fields = st.sampled_from(
    ["v", "seq", "axes", "buttons", "t_input", "controller", "keys", "name", "kind", "state", "x"]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), fields, json_values, st.booleans())
def test_mutated_valid_messages_parse_or_raise_typed_error(msg, field, value, drop) -> None:
    data = json.loads(msg.model_dump_json())
    if drop:
        data.pop(field, None)
    else:
        data[field] = value
    _parse_or_typed_error(json.dumps(data))
    if msg.type == "xr":
        data = json.loads(msg.model_dump_json())
        data["controller"][field] = value
        _parse_or_typed_error(json.dumps(data))


def _doc_examples() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.S)
    return [json.loads(line) for block in blocks for line in block.splitlines() if line.strip()]


def test_documented_examples_are_valid() -> None:
    examples = _doc_examples()
    assert {e["type"] for e in examples} >= set(CLIENT_TYPES) | {"ack", "lease", "pong", "error"}
    for example in examples:
        if example["type"] in CLIENT_TYPES:
            parse_client_message(json.dumps(example))
        else:
            server_adapter.validate_python(example)
