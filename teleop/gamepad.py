"""Gamepad (W3C standard mapping) to the 7-D end-effector action.

Standard mapping: ``axes[0..3]`` = left x, left y, right x, right y in [-1, 1]
with **y positive down**; buttons 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB, 6 LT, 7 RT
(analog values), 8 Back, 9 Start, 10/11 stick press, 12-15 d-pad up, down,
left, right, 16 Home.

Map (robot base frame FLU; operator standing behind the robot, facing +x):

=====================  =========================================
left stick up / down   +x / -x (forward / back)
left stick left/right  +y / -y (left / right)
RT / LT (analog)       +z / -z (up / down)
right stick left/right +yaw / -yaw (drz, counter-clockwise from above)
right stick up / down  +pitch / -pitch (dry, tool tips down / up)
d-pad right / left     +roll / -roll (drx)
``gripper_button`` (A) gripper: toggle or hold (settings)
``deadman_button`` (RB) hold to move; released -> hold (None)
=====================  =========================================

Every other button is free for the page to use for commands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tandem.settings.teleop import TeleopSettings
from teleop.frames import GRIPPER_CLOSED, GRIPPER_OPEN, make_action
from teleop.rotations import Array
from teleop.smoothing import ExpSmoother

LEFT_X, LEFT_Y, RIGHT_X, RIGHT_Y = 0, 1, 2, 3
LT, RT = 6, 7
DPAD_LEFT, DPAD_RIGHT = 14, 15
PRESS_THRESHOLD = 0.5


def radial_deadzone(x: float, y: float, deadzone: float) -> tuple[float, float]:
    """Stick (x, y) with a radial deadzone, rescaled so the output magnitude goes 0..1
    continuously from the deadzone edge to full deflection (clamped to the unit disc)."""
    r = math.hypot(x, y)
    if r <= deadzone or r == 0.0:
        return 0.0, 0.0
    scaled = min((r - deadzone) / (1.0 - deadzone), 1.0)
    return x / r * scaled, y / r * scaled


def scalar_deadzone(v: float, deadzone: float) -> float:
    """Deadzone for one axis or trigger, rescaled to reach +-1 at full deflection."""
    mag = abs(v)
    if mag <= deadzone:
        return 0.0
    return math.copysign(min((mag - deadzone) / (1.0 - deadzone), 1.0), v)


def expo_curve(x: float, y: float, expo: float) -> tuple[float, float]:
    """Apply ``m -> (1 - expo) * m + expo * m**3`` to the stick magnitude (direction kept)."""
    r = math.hypot(x, y)
    if r == 0.0 or expo == 0.0:
        return x, y
    shaped = (1.0 - expo) * r + expo * r**3
    return x / r * shaped, y / r * shaped


def _axis(axes: Sequence[float], i: int) -> float:
    v = float(axes[i]) if i < len(axes) else 0.0
    return v if math.isfinite(v) else 0.0


def _value(values: Sequence[float], i: int) -> float:
    v = float(values[i]) if i < len(values) else 0.0
    return min(max(v, 0.0), 1.0) if math.isfinite(v) else 0.0


def stick_command(
    axes: Sequence[float], button_values: Sequence[float], cfg: TeleopSettings
) -> tuple[Array, Array]:
    """Raw pad state to (translation (3,), rotation (3,)) in the base frame, unscaled by
    the per-step limits, before smoothing. Missing axes/buttons read as zero."""
    lx, ly = expo_curve(
        *radial_deadzone(_axis(axes, LEFT_X), _axis(axes, LEFT_Y), cfg.deadzone), cfg.expo
    )
    rx, ry = expo_curve(
        *radial_deadzone(_axis(axes, RIGHT_X), _axis(axes, RIGHT_Y), cfg.deadzone), cfg.expo
    )
    up = scalar_deadzone(_value(button_values, RT), cfg.trigger_deadzone)
    down = scalar_deadzone(_value(button_values, LT), cfg.trigger_deadzone)
    roll = _value(button_values, DPAD_RIGHT) - _value(button_values, DPAD_LEFT)
    translation = np.array([-ly, -lx, up - down]) * cfg.translation_scale
    rotation = np.array([roll, -ry, -rx]) * cfg.rotation_scale
    return translation, rotation


class GripperLatch:
    """Gripper state from one button: 'toggle' flips on each rising edge, 'hold' follows
    the button (closed while pressed). Output -1 open .. +1 closed; starts open."""

    def __init__(self, mode: str) -> None:
        if mode not in ("toggle", "hold"):
            raise ValueError(f"gripper mode must be 'toggle' or 'hold', got {mode!r}")
        self.mode = mode
        self.reset()

    def reset(self) -> None:
        self.value = GRIPPER_OPEN
        self._was_pressed = False

    def update(self, pressed: bool, active: bool = True) -> float:
        """Feed the button state; only counts while ``active`` (the deadman is held).
        Edges are tracked even when inactive so a button already down never toggles."""
        rising = pressed and not self._was_pressed
        self._was_pressed = pressed
        if active and self.mode == "toggle" and rising:
            self.value = GRIPPER_CLOSED if self.value == GRIPPER_OPEN else GRIPPER_OPEN
        elif active and self.mode == "hold":
            self.value = GRIPPER_CLOSED if pressed else GRIPPER_OPEN
        return self.value


class GamepadMapper:
    """Stateful gamepad mapping: deadman, gripper latch and smoothing.

    ``update`` returns ``(action, deadman)``: ``action`` is the 7-D list or None
    ("hold": deadman released; the gripper state is kept for the next press).
    """

    def __init__(self, cfg: TeleopSettings) -> None:
        self.cfg = cfg
        self.gripper = GripperLatch(cfg.gripper_mode)
        self.smoother = ExpSmoother(cfg.smoothing)

    def reset(self) -> None:
        """Forget everything: gripper back to open, smoothing cleared."""
        self.gripper.reset()
        self.smoother.reset()

    def release(self) -> None:
        """Stop moving (e.g. lease lost) but keep the gripper state."""
        self.smoother.reset()

    def update(
        self, axes: Sequence[float], pressed: Sequence[bool], values: Sequence[float]
    ) -> tuple[list[float] | None, bool]:
        """Map one pad sample. ``pressed``/``values`` are per button (standard mapping)."""
        deadman = _pressed(pressed, values, self.cfg.deadman_button)
        grip_down = _pressed(pressed, values, self.cfg.gripper_button)
        gripper = self.gripper.update(grip_down, active=deadman)
        if not deadman:
            self.smoother.reset()
            return None, False
        translation, rotation = stick_command(axes, values, self.cfg)
        smoothed = self.smoother(np.concatenate([translation, rotation]))
        return make_action(smoothed[:3], smoothed[3:], gripper), True


def _pressed(pressed: Sequence[bool], values: Sequence[float], i: int) -> bool:
    flag = bool(pressed[i]) if i < len(pressed) else False
    return flag or _value(values, i) > PRESS_THRESHOLD
