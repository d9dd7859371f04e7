"""Keyboard fallback mapping."""

import math

import numpy as np

from tandem.settings.teleop import TeleopSettings
from teleop.keyboard import KeyboardMapper, key_command


def test_key_directions() -> None:
    np.testing.assert_allclose(key_command({"KeyW"}, 1.0), [1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(key_command({"KeyD"}, 1.0), [0, -1, 0, 0, 0, 0])
    np.testing.assert_allclose(key_command({"KeyE"}, 1.0), [0, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(key_command({"ArrowLeft"}, 1.0), [0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(key_command({"KeyW", "KeyS", "KeyQ"}, 0.5), [0, 0, -0.5, 0, 0, 0])


def test_no_keys_holds_and_speed_applies() -> None:
    m = KeyboardMapper(TeleopSettings(keyboard_speed=0.4))
    assert m.update([]) == (None, False)
    assert m.update(["KeyX"]) == (None, False)  # unmapped keys are no deadman
    action, deadman = m.update(["KeyW", "ArrowUp"])
    assert deadman and math.isclose(action[0], 0.4) and math.isclose(action[4], 0.4)


def test_deadman_key_required_when_configured() -> None:
    m = KeyboardMapper(TeleopSettings(keyboard_deadman_key="ShiftLeft"))
    assert m.update(["KeyW"]) == (None, False)
    action, deadman = m.update(["KeyW", "ShiftLeft"])
    assert deadman and action[0] > 0
    action, deadman = m.update(["ShiftLeft"])
    assert deadman and action[:6] == [0.0] * 6


def test_space_toggles_gripper_and_state_is_kept() -> None:
    m = KeyboardMapper(TeleopSettings())
    assert m.update(["Space"])[0][6] == 1.0
    assert m.update(["Space", "KeyW"])[0][6] == 1.0  # still held: no second toggle
    assert m.update([])[0] is None
    assert m.update(["KeyW"])[0][6] == 1.0
    assert m.update(["KeyW", "Space"])[0][6] == -1.0
    m.reset()
    assert m.update(["KeyW"])[0][6] == -1.0
