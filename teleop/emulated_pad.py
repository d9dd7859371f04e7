"""The gamepad run backwards: which pad snapshot makes ``GamepadMapper`` output an action.

A scripted operator (``tandem demo-operator``) drives the robot through the same
``/ws/control`` messages as a person with a gamepad. ``EmulatedPad`` turns a
wanted 7-D action into standard-mapping snapshots (axes and buttons) and feeds
each one to a replica of the server's ``GamepadMapper``, so it always knows the
state of the gripper latch and of the smoother on the server's side.

What a pad can express limits the result, as it does for a person: the left
stick gives one (dx, dy) of magnitude <= 1, the right stick one (dry, drz) of
magnitude <= 1, and the d-pad rolls by a whole step or not at all. A wanted
action outside that set is scaled back onto it (direction kept).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tandem.settings.teleop import TeleopSettings
from teleop.frames import GRIPPER
from teleop.gamepad import DPAD_LEFT, DPAD_RIGHT, LT, RT, GamepadMapper

N_AXES, N_BUTTONS = 4, 17  # a standard-mapping pad: 4 axes, 17 buttons
BISECTION_STEPS = 50


@dataclass(frozen=True)
class PadSnapshot:
    """One ``navigator.getGamepads()`` sample: what a ``gamepad`` message carries."""

    axes: tuple[float, ...]
    pressed: tuple[bool, ...]
    values: tuple[float, ...]
    action: list[float] | None  # what the server's mapper makes of it (None: hold)

    def buttons(self) -> list[dict[str, float | bool]]:
        """The ``buttons`` field of the control-protocol message."""
        return [{"pressed": p, "value": v} for p, v in zip(self.pressed, self.values, strict=True)]


def invert_expo(shaped: float, expo: float) -> float:
    """The stick magnitude ``m`` in [0, 1] with ``(1 - expo) * m + expo * m**3 == shaped``."""
    low, high = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (low + high)
        if (1.0 - expo) * mid + expo * mid**3 < shaped:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


_TINY = 1e-12


def stick_for(x: float, y: float, cfg: TeleopSettings) -> tuple[float, float]:
    """Raw stick axes whose deadzone + expo output is (x, y), clipped to the unit disc."""
    r = math.hypot(x, y)
    if r < _TINY:  # nothing a stick can express; subnormal x / r is not even a direction
        return 0.0, 0.0
    shaped = min(r, 1.0)
    raw = cfg.deadzone + invert_expo(shaped, cfg.expo) * (1.0 - cfg.deadzone)
    raw = min(raw, 1.0)
    return x / r * raw, y / r * raw


def trigger_for(v: float, deadzone: float) -> float:
    """Raw trigger value whose deadzone output is ``v`` (>= 0; 0 means released)."""
    return 0.0 if v <= 0.0 else min(deadzone + min(v, 1.0) * (1.0 - deadzone), 1.0)


class EmulatedPad:
    """Pad snapshots for wanted actions, tracked through a replica of the server's mapper.

    Call ``reset()`` whenever the server resets its mapper (when the control
    lease is granted). Every snapshot returned must be sent, in order: the
    replica has already seen it.
    """

    def __init__(self, cfg: TeleopSettings) -> None:
        self.cfg = cfg
        self.replica = GamepadMapper(cfg)

    def reset(self) -> None:
        self.replica.reset()

    def idle(self) -> PadSnapshot:
        """Nothing held: the pad is connected, the robot is not driven."""
        return self._snapshot((0.0,) * N_AXES, {})

    def drive(self, action: Sequence[float]) -> list[PadSnapshot]:
        """Snapshots (one, or two when the gripper toggles) that apply ``action``."""
        wanted = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        command = self._unsmoothed(wanted[:GRIPPER])
        axes, analog = self._sticks(command)
        held = {self.cfg.deadman_button: 1.0, **analog}
        close = wanted[GRIPPER] > 0.0
        frames = []
        if self.cfg.gripper_mode == "hold":
            held[self.cfg.gripper_button] = 1.0 if close else 0.0
        elif close != (self.replica.gripper.value > 0.0):
            # toggle: a press (rising edge) then a release, both with the deadman held
            frames.append(self._snapshot(axes, {**held, self.cfg.gripper_button: 1.0}))
        frames.append(self._snapshot(axes, held))
        return frames

    def _unsmoothed(self, wanted: np.ndarray) -> np.ndarray:
        """The command before smoothing whose smoothed value is ``wanted`` (when reachable)."""
        alpha = self.cfg.smoothing
        previous = self.replica.smoother.last
        return (wanted - alpha * (0.0 if previous is None else previous)) / (1.0 - alpha)

    def _sticks(self, command: np.ndarray) -> tuple[tuple[float, ...], dict[int, float]]:
        """Axes and analog buttons for an unsmoothed (translation, rotation) command."""
        t = command[:3] / self.cfg.translation_scale
        r = command[3:6] / self.cfg.rotation_scale
        lx, ly = stick_for(-t[1], -t[0], self.cfg)
        rx, ry = stick_for(-r[2], -r[1], self.cfg)
        analog = {
            RT: trigger_for(t[2], self.cfg.trigger_deadzone),
            LT: trigger_for(-t[2], self.cfg.trigger_deadzone),
            DPAD_RIGHT: 1.0 if r[0] > 0.5 else 0.0,
            DPAD_LEFT: 1.0 if r[0] < -0.5 else 0.0,
        }
        return (lx, ly, rx, ry), analog

    def _snapshot(self, axes: Sequence[float], held: dict[int, float]) -> PadSnapshot:
        values = [0.0] * N_BUTTONS
        for button, value in held.items():
            values[button] = float(value)
        pressed = tuple(v > 0.5 for v in values)
        action, _ = self.replica.update(axes, pressed, values)
        return PadSnapshot(tuple(float(a) for a in axes), pressed, tuple(values), action)
