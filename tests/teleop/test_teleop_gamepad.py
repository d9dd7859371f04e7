"""Gamepad mapping: deadzones, directions, deadman, gripper, scaling, smoothing."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.settings.teleop import TeleopSettings
from teleop.gamepad import (
    GamepadMapper,
    expo_curve,
    radial_deadzone,
    scalar_deadzone,
)

RB, A, LT, RT, DPAD_LEFT, DPAD_RIGHT = 5, 0, 6, 7, 14, 15


def pad(axes=(0.0, 0.0, 0.0, 0.0), held=(), values=None):
    """(axes, pressed, values) for 17 standard buttons; ``held`` buttons read 1.0."""
    vals = [0.0] * 17
    for i in held:
        vals[i] = 1.0
    for i, v in (values or {}).items():
        vals[i] = v
    return list(axes), [v > 0.5 for v in vals], vals


def test_radial_deadzone_inside_edge_and_full() -> None:
    assert radial_deadzone(0.05, 0.05, 0.1) == (0.0, 0.0)
    x, y = radial_deadzone(0.1 + 1e-9, 0.0, 0.1)
    assert 0.0 < x < 1e-6 and y == 0.0  # continuous at the edge, no step
    x, y = radial_deadzone(0.0, -1.0, 0.1)
    assert (x, y) == (0.0, -1.0)
    x, y = radial_deadzone(1.0, 1.0, 0.1)  # corner of a square gate: clamped to the disc
    assert math.isclose(math.hypot(x, y), 1.0) and math.isclose(x, y)


@given(st.floats(-1, 1), st.floats(-1, 1), st.floats(0, 0.9))
def test_radial_deadzone_properties(x: float, y: float, dz: float) -> None:
    ox, oy = radial_deadzone(x, y, dz)
    r, ro = math.hypot(x, y), math.hypot(ox, oy)
    assert ro <= 1.0 + 1e-12
    if r <= dz:
        assert ro == 0.0
    elif ro > 0:
        assert math.isclose(ox * y, oy * x, abs_tol=1e-9)  # same direction
        assert ox * x >= 0 and oy * y >= 0
        assert ro <= r + 1e-12 or r > 1.0


def test_scalar_deadzone_and_expo() -> None:
    assert scalar_deadzone(0.04, 0.05) == 0.0
    assert scalar_deadzone(-1.0, 0.05) == -1.0
    assert math.isclose(scalar_deadzone(0.525, 0.05), 0.5)
    assert expo_curve(0.0, 0.0, 1.0) == (0.0, 0.0)
    assert math.isclose(expo_curve(1.0, 0.0, 1.0)[0], 1.0)
    assert math.isclose(expo_curve(0.5, 0.0, 1.0)[0], 0.125)
    assert expo_curve(0.5, 0.2, 0.0) == (0.5, 0.2)


@pytest.mark.parametrize(
    ("state", "index", "sign"),
    [
        (pad(axes=(0, -1, 0, 0), held=[RB]), 0, 1),  # left stick up: forward
        (pad(axes=(0, 1, 0, 0), held=[RB]), 0, -1),  # left stick down: back (y is down!)
        (pad(axes=(1, 0, 0, 0), held=[RB]), 1, -1),  # left stick right: robot right = -y
        (pad(axes=(-1, 0, 0, 0), held=[RB]), 1, 1),
        (pad(held=[RB, RT]), 2, 1),  # RT up
        (pad(held=[RB, LT]), 2, -1),  # LT down
        (pad(held=[RB, DPAD_RIGHT]), 3, 1),  # roll
        (pad(held=[RB, DPAD_LEFT]), 3, -1),
        (pad(axes=(0, 0, 0, -1), held=[RB]), 4, 1),  # right stick up: pitch +
        (pad(axes=(0, 0, -1, 0), held=[RB]), 5, 1),  # right stick left: yaw left (+z)
        (pad(axes=(0, 0, 1, 0), held=[RB]), 5, -1),
    ],
)
def test_directions(state, index: int, sign: int) -> None:
    action, deadman = GamepadMapper(TeleopSettings()).update(*state)
    assert deadman and action is not None
    expected = [0.0] * 6
    expected[index] = float(sign)
    np.testing.assert_allclose(action[:6], expected, atol=1e-12)
    assert action[6] == -1.0  # gripper open


def test_deadman_release_holds_and_keeps_gripper() -> None:
    m = GamepadMapper(TeleopSettings())
    action, _ = m.update(*pad(axes=(0, -1, 0, 0), held=[RB, A]))
    assert action is not None and action[6] == 1.0  # A toggled the gripper closed
    action, deadman = m.update(*pad(axes=(0, -1, 0, 0)))  # RB released, stick still pushed
    assert action is None and not deadman
    action, _ = m.update(*pad(held=[RB]))
    assert action is not None and action[6] == 1.0 and action[:6] == [0.0] * 6


def test_gripper_toggles_on_press_not_while_held() -> None:
    m = GamepadMapper(TeleopSettings())
    grips = [m.update(*pad(held=h))[0][6] for h in ([RB], [RB, A], [RB, A], [RB], [RB, A])]
    assert grips == [-1.0, 1.0, 1.0, 1.0, -1.0]


def test_gripper_button_down_before_deadman_does_not_toggle() -> None:
    m = GamepadMapper(TeleopSettings())
    assert m.update(*pad(held=[A]))[0] is None
    assert m.update(*pad(held=[A, RB]))[0][6] == -1.0


def test_gripper_hold_mode() -> None:
    m = GamepadMapper(TeleopSettings(gripper_mode="hold"))
    assert m.update(*pad(held=[RB, A]))[0][6] == 1.0
    assert m.update(*pad(held=[RB]))[0][6] == -1.0


def test_scaling_and_clip_keep_direction() -> None:
    half = GamepadMapper(TeleopSettings(translation_scale=0.5)).update(
        *pad(axes=(0, -1, 0, 0), held=[RB])
    )[0]
    assert math.isclose(half[0], 0.5)
    big = GamepadMapper(TeleopSettings(translation_scale=4.0)).update(
        *pad(axes=(0, -0.3, 0, 0), held=[RB], values={RT: 0.9})
    )[0]
    assert max(abs(x) for x in big[:3]) == 1.0
    raw = GamepadMapper(TeleopSettings()).update(
        *pad(axes=(0, -0.3, 0, 0), held=[RB], values={RT: 0.9})
    )[0]
    assert math.isclose(big[0] / big[2], raw[0] / raw[2])


def test_smoothing_ramps_and_resets_on_release() -> None:
    m = GamepadMapper(TeleopSettings(smoothing=0.5, deadzone=0.0))
    xs = [m.update(*pad(axes=(0, -1, 0, 0), held=[RB]))[0][0] for _ in range(3)]
    np.testing.assert_allclose(xs, [0.5, 0.75, 0.875])
    m.update(*pad())  # release
    assert math.isclose(m.update(*pad(axes=(0, -1, 0, 0), held=[RB]))[0][0], 0.5)


def test_short_and_empty_inputs() -> None:
    m = GamepadMapper(TeleopSettings())
    assert m.update([], [], []) == (None, False)
    pressed = [False] * 6
    pressed[RB] = True
    action, deadman = m.update([0.0, -1.0], pressed, [0.0] * 6)
    assert deadman and math.isclose(action[0], 1.0)


axis = st.floats(-1, 1)
unit = st.floats(0, 1)


@given(
    st.lists(axis, max_size=8),
    st.lists(st.tuples(st.booleans(), unit), max_size=20),
    st.sampled_from(["toggle", "hold"]),
    st.floats(0, 0.9),
    st.floats(0.1, 5),
)
def test_any_pad_state_gives_bounded_action(axes, buttons, mode, smoothing, scale) -> None:
    cfg = TeleopSettings(gripper_mode=mode, smoothing=smoothing, translation_scale=scale)
    m = GamepadMapper(cfg)
    for _ in range(2):
        action, deadman = m.update(axes, [b[0] for b in buttons], [b[1] for b in buttons])
        assert (action is None) == (not deadman)
        if action is not None:
            assert len(action) == 7
            assert all(math.isfinite(x) and -1.0 <= x <= 1.0 for x in action)
