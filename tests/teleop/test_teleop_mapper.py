"""InputMapper facade, fed with parsed control-protocol messages."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tandem.messages.control import parse_client_message
from tandem.settings import load_settings
from tandem.settings.teleop import TeleopSettings
from teleop import ActionLimits, EEPose, InputMapper, MappedInput

REPO = Path(__file__).resolve().parents[2]
HOME = EEPose((0.5, 0.0, 0.3), (1.0, 0.0, 0.0, 0.0))


def gamepad(axes, held=(), t=1.0):
    buttons = [{"pressed": i in held, "value": 1.0 if i in held else 0.0} for i in range(17)]
    return parse_client_message(
        json.dumps({"type": "gamepad", "axes": axes, "buttons": buttons, "t_input": t})
    )


def xr(hand="right", pos=(0.0, 1.0, -0.3), squeeze=1.0, trigger=0.0, **extra):
    controller = {
        "hand": hand,
        "position": list(pos),
        "orientation": [0.0, 0.0, 0.0, 1.0],
        "buttons": {"squeeze": squeeze, "trigger": trigger},
        **extra,
    }
    return parse_client_message(
        json.dumps({"type": "xr", "controller": controller, "t_input": 5.0})
    )


def event(kind, **extra):
    return parse_client_message(
        json.dumps({"type": "xr_event", "kind": kind, "t_input": 1.0, **extra})
    )


def test_gamepad_through_protocol() -> None:
    mapper = InputMapper(TeleopSettings())
    out = mapper.on_gamepad(gamepad([0.0, -1.0, 0.0, 0.0], held={5}))
    assert out == MappedInput([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], True, True, "gamepad")
    out = mapper.on_gamepad(gamepad([0.0, -1.0, 0.0, 0.0]))
    assert out.action is None and not out.deadman and out.device == "gamepad"


def test_non_standard_pad_is_not_mapped() -> None:
    mapper = InputMapper(TeleopSettings())
    msg = gamepad([0.0, -1.0, 0.0, 0.0], held={5}).model_copy(update={"mapping": ""})
    out = mapper.on_gamepad(msg)
    assert out.action is None and out.event == "non_standard_mapping"


def test_keyboard_through_protocol() -> None:
    mapper = InputMapper(TeleopSettings())
    msg = parse_client_message('{"type": "keyboard", "keys": ["KeyW", "KeyW"], "t_input": 3}')
    out = mapper.on_keyboard(msg)
    assert out.device == "keyboard" and out.engaged and math.isclose(out.action[0], 0.5)


def test_xr_uses_bridge_limits_and_driving_hand() -> None:
    mapper = InputMapper(TeleopSettings(), ActionLimits(max_translation_m=0.02))
    assert mapper.on_xr(xr(), HOME).event == "engaged"
    out = mapper.on_xr(xr(pos=(0.0, 1.0, -0.31)), HOME)
    assert math.isclose(out.action[0], 0.5)
    # Frames of the other hand change nothing and repeat the driving hand's last result.
    other = mapper.on_xr(xr(hand="left", squeeze=0.0), HOME)
    assert other.action == out.action and other.engaged and other.event is None
    assert mapper.on_xr(xr(squeeze=0.0), HOME).event == "released"


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("recenter", {}), ("tracking_lost", {}), ("visibility", {"state": "visible-blurred"})],
)
def test_xr_events_release_clutch(kind: str, extra: dict) -> None:
    mapper = InputMapper(TeleopSettings())
    mapper.on_xr(xr(), HOME)
    out = mapper.on_xr_event(event(kind, **extra))
    assert out.event == kind and not out.engaged and out.action is None
    assert not mapper.on_xr(xr(pos=(0.0, 1.0, -0.31)), HOME).engaged  # needs a fresh press
    mapper.on_xr(xr(squeeze=0.0), HOME)
    assert mapper.on_xr(xr(), HOME).engaged


def test_visible_again_keeps_clutch() -> None:
    mapper = InputMapper(TeleopSettings())
    mapper.on_xr(xr(), HOME)
    moved = mapper.on_xr(xr(pos=(0.0, 1.0, -0.31)), HOME)
    out = mapper.on_xr_event(event("visibility", state="visible"))
    assert out.engaged and out.action == moved.action and out.event == "visibility"
    assert mapper.on_xr(xr(pos=(0.0, 1.0, -0.31)), HOME).engaged


def test_set_forward_needs_a_pose_then_calibrates() -> None:
    mapper = InputMapper(TeleopSettings())
    assert mapper.on_xr_event(event("set_forward")).event == "no_pose"
    mapper.on_xr(xr(squeeze=0.0), HOME)
    assert mapper.on_xr_event(event("set_forward")).event == "forward_set"
    assert math.isclose(mapper.xr.yaw_rad, 0.0, abs_tol=1e-12)


def test_release_stops_all_devices_but_keeps_gripper() -> None:
    mapper = InputMapper(TeleopSettings())
    mapper.on_gamepad(gamepad([0.0, 0.0], held={5, 0}))  # gripper toggled closed
    mapper.on_xr(xr(), HOME)
    mapper.release()
    assert not mapper.xr.engaged
    assert not mapper.on_xr(xr(), HOME).engaged
    assert mapper.on_gamepad(gamepad([0.0, 0.0], held={5})).action[6] == 1.0
    mapper.reset()
    assert mapper.on_gamepad(gamepad([0.0, 0.0], held={5})).action[6] == -1.0


def test_constructed_from_the_settings_tree() -> None:
    settings = load_settings(teleop={"deadzone": 0.2, "xr_hand": "left"})
    mapper = InputMapper(
        settings.teleop,
        ActionLimits(settings.bridge.max_translation_m, settings.bridge.max_rotation_rad),
    )
    assert mapper.on_xr(xr(hand="left"), HOME).engaged


def test_teleop_imports_no_io_library() -> None:
    # (pydantic itself pulls in socket and asyncio, so those are not checked.)
    code = (
        "import sys, teleop, teleop.mapper; "
        "banned = {'zmq', 'fastapi', 'starlette', 'uvicorn', 'websockets', 'sqlalchemy', "
        "'mujoco', 'torch', 'cv2', 'httpx', 'aiohttp', 'requests'}; "
        "print(sorted(banned & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
