"""Keyboard fallback: held keys (``KeyboardEvent.code`` names) to the 7-D action.

Key map (robot base frame FLU, operator behind the robot facing +x):

===============  =================================
KeyW / KeyS      +x / -x (forward / back)
KeyA / KeyD      +y / -y (left / right)
KeyE / KeyQ      +z / -z (up / down)
ArrowLeft/Right  +yaw / -yaw (drz)
ArrowUp / Down   +pitch / -pitch (dry, tool tips down / up)
KeyC / KeyZ      +roll / -roll (drx)
Space            gripper (toggle or hold, like the gamepad button)
===============  =================================

Deadman: with ``keyboard_deadman_key`` set (e.g. ``ShiftLeft``) that key must be
held; otherwise holding any mapped key counts as the deadman. No deadman ->
``None`` (hold). Each held key commands ``keyboard_speed`` of a full step;
opposite keys cancel.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tandem.settings.teleop import TeleopSettings
from teleop.frames import make_action
from teleop.gamepad import GripperLatch
from teleop.smoothing import ExpSmoother

# key code -> (component index 0..5, sign)
KEY_MAP: dict[str, tuple[int, float]] = {
    "KeyW": (0, 1.0),
    "KeyS": (0, -1.0),
    "KeyA": (1, 1.0),
    "KeyD": (1, -1.0),
    "KeyE": (2, 1.0),
    "KeyQ": (2, -1.0),
    "KeyC": (3, 1.0),
    "KeyZ": (3, -1.0),
    "ArrowUp": (4, 1.0),
    "ArrowDown": (4, -1.0),
    "ArrowLeft": (5, 1.0),
    "ArrowRight": (5, -1.0),
}
GRIPPER_KEY = "Space"


def key_command(keys: Iterable[str], speed: float) -> np.ndarray:
    """Held keys to the 6-D motion command (translation, rotation), each in [-speed, speed]."""
    cmd = np.zeros(6)
    for key in set(keys):
        if key in KEY_MAP:
            index, sign = KEY_MAP[key]
            cmd[index] += sign * speed
    return cmd


class KeyboardMapper:
    """Stateful keyboard mapping (deadman, gripper latch, smoothing).

    ``update(keys)`` returns ``(action | None, deadman)``; None means hold.
    """

    def __init__(self, cfg: TeleopSettings) -> None:
        self.cfg = cfg
        self.gripper = GripperLatch(cfg.gripper_mode)
        self.smoother = ExpSmoother(cfg.smoothing)

    def reset(self) -> None:
        self.gripper.reset()
        self.smoother.reset()

    def release(self) -> None:
        """Stop moving but keep the gripper state."""
        self.smoother.reset()

    def deadman(self, keys: set[str]) -> bool:
        if self.cfg.keyboard_deadman_key is not None:
            return self.cfg.keyboard_deadman_key in keys
        return any(k in KEY_MAP or k == GRIPPER_KEY for k in keys)

    def update(self, keys: Iterable[str]) -> tuple[list[float] | None, bool]:
        held = set(keys)
        deadman = self.deadman(held)
        gripper = self.gripper.update(GRIPPER_KEY in held, active=deadman)
        if not deadman:
            self.smoother.reset()
            return None, False
        cmd = self.smoother(key_command(held, self.cfg.keyboard_speed))
        return make_action(cmd[:3], cmd[3:], gripper), True
