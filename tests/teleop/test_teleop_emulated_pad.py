"""EmulatedPad: snapshots that make the real GamepadMapper output the wanted action."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.messages.control import GamepadInput
from tandem.settings.teleop import TeleopSettings
from teleop import InputMapper
from teleop.emulated_pad import EmulatedPad, invert_expo, stick_for

unit = st.floats(-1.0, 1.0, allow_nan=False)


def disc(a: float, b: float) -> tuple[float, float]:
    """(a, b) scaled into the unit disc: what one stick can express."""
    r = float(np.hypot(a, b))
    return (a / r, b / r) if r > 1.0 else (a, b)


def expressible(action: list[float]) -> np.ndarray:
    dx, dy = disc(action[0], action[1])
    dry, drz = disc(action[4], action[5])
    roll = float(np.sign(action[3])) if abs(action[3]) > 0.5 else 0.0
    return np.array([dx, dy, action[2], roll, dry, drz, 1.0 if action[6] > 0 else -1.0])


def through_server(pad: EmulatedPad, server: InputMapper, action: list[float]) -> list[float]:
    """Send the pad's snapshots through the real server-side mapper, as messages."""
    out = None
    for i, snap in enumerate(pad.drive(action)):
        msg = GamepadInput.model_validate_json(
            GamepadInput(
                seq=i, axes=list(snap.axes), buttons=snap.buttons(), t_input=1.0
            ).model_dump_json()
        )
        out = server.on_gamepad(msg).action
        assert out == snap.action  # the replica agrees with the server
    assert out is not None
    return out


@pytest.mark.parametrize("expo", [0.0, 0.3, 1.0])
def test_invert_expo(expo: float):
    for m in np.linspace(0, 1, 11):
        shaped = (1 - expo) * m + expo * m**3
        assert invert_expo(shaped, expo) == pytest.approx(m, abs=1e-9)


def test_a_subnormal_wish_is_a_centred_stick():
    # hypot(5e-324, 5e-324) rounds to 5e-324, so x / r would point the stick at 45 degrees
    assert stick_for(5e-324, 5e-324, TeleopSettings(deadzone=0.1)) == (0.0, 0.0)
    cfg = TeleopSettings(deadzone=0.1)
    got = through_server(EmulatedPad(cfg), InputMapper(cfg), [5e-324, 5e-324, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(got, [0, 0, 0, 0, 0, 0, -1], atol=1e-6)


def test_stick_outside_the_disc_keeps_its_direction():
    x, y = stick_for(2.0, 2.0, TeleopSettings(deadzone=0.1))
    assert x == pytest.approx(y) and np.hypot(x, y) == pytest.approx(1.0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(unit, min_size=7, max_size=7),
    st.floats(0.0, 0.3),
    st.floats(0.0, 1.0),
    st.sampled_from(["toggle", "hold"]),
)
def test_server_outputs_the_wanted_action(action, deadzone, expo, gripper_mode):
    cfg = TeleopSettings(deadzone=deadzone, expo=expo, gripper_mode=gripper_mode)
    pad, server = EmulatedPad(cfg), InputMapper(cfg)
    got = through_server(pad, server, action)
    np.testing.assert_allclose(got, expressible(action), atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(unit, min_size=7, max_size=7), min_size=1, max_size=20))
def test_gripper_latch_and_smoothing_stay_in_step_over_a_sequence(actions):
    cfg = TeleopSettings(smoothing=0.5, translation_scale=2.0)
    pad, server = EmulatedPad(cfg), InputMapper(cfg)
    for action in actions:
        got = through_server(pad, server, [0.2 * a for a in action[:6]] + [action[6]])
        assert np.sign(got[6]) == (1.0 if action[6] > 0 else -1.0)


def test_smoothing_is_compensated_when_reachable():
    cfg = TeleopSettings(smoothing=0.5)
    pad, server = EmulatedPad(cfg), InputMapper(cfg)
    for _ in range(3):
        got = through_server(pad, server, [0.3, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
        assert got[0] == pytest.approx(0.3)


def test_idle_holds_and_release_needs_the_deadman():
    pad = EmulatedPad(TeleopSettings())
    assert pad.idle().action is None
    assert pad.drive([0.5, 0, 0, 0, 0, 0, 1.0])[-1].action is not None
