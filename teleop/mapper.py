"""``InputMapper``: the facade the server calls for each control-protocol input message.

One mapper per operator connection. Each ``on_*`` call returns a ``MappedInput``
for that device; the server keeps the newest one (latest wins) and sends its
``action`` to the bridge, or treats ``action is None`` as "hold" (the operator
is not moving the robot; in an intervention that means handing back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

from tandem.messages.control import GamepadInput, KeyboardInput, XREvent, XRInput
from tandem.settings.teleop import TeleopSettings
from teleop.frames import ActionLimits, EEPose
from teleop.gamepad import GamepadMapper
from teleop.keyboard import KeyboardMapper
from teleop.xr import XRClutch, XRSample

log = logging.getLogger(__name__)

Device = Literal["gamepad", "xr", "keyboard"]


@dataclass(frozen=True)
class MappedInput:
    """Result of one input message.

    ``action``: the 7-D action ``[dx, dy, dz, drx, dry, drz, gripper]`` in [-1, 1]
    (base frame FLU, fractions of the per-step limits; gripper -1 open .. +1
    closed), or None for hold. ``deadman``: the operator holds the deadman /
    squeeze. ``engaged``: the device is actively driving (deadman held, XR
    clutch engaged). ``event``: a notable change (XR: engaged, released,
    tracking_lost, jump_rejected, no_ee_pose, recenter, visibility,
    forward_set, no_pose), or None.
    """

    action: list[float] | None
    deadman: bool
    engaged: bool
    device: Device
    event: str | None = None


class InputMapper:
    """Turns control-protocol input messages into actions; see the module docstring.

    ``limits`` must be the bridge's per-step limits (``settings.bridge``
    ``max_translation_m`` / ``max_rotation_rad``): the XR clutch divides pose
    errors by them.
    """

    def __init__(self, cfg: TeleopSettings, limits: ActionLimits | None = None) -> None:
        self.cfg = cfg
        self.limits = limits or ActionLimits()
        self.gamepad = GamepadMapper(cfg)
        self.keyboard = KeyboardMapper(cfg)
        self.xr = XRClutch(cfg, self.limits)
        self._last_xr = MappedInput(None, False, False, "xr")
        self._last_quat: tuple[float, ...] | None = None

    def on_gamepad(self, msg: GamepadInput) -> MappedInput:
        """Map a pad snapshot; pads without the standard mapping are not used (hold)."""
        if msg.mapping != "standard":
            self.gamepad.release()
            return MappedInput(None, False, False, "gamepad", "non_standard_mapping")
        pressed = [b.pressed for b in msg.buttons]
        values = [b.value for b in msg.buttons]
        action, deadman = self.gamepad.update(msg.axes, pressed, values)
        return MappedInput(action, deadman, deadman, "gamepad")

    def on_keyboard(self, msg: KeyboardInput) -> MappedInput:
        action, deadman = self.keyboard.update(msg.keys)
        return MappedInput(action, deadman, deadman, "keyboard")

    def on_xr(self, msg: XRInput, ee_pose: EEPose | None) -> MappedInput:
        """Map one XR frame. Frames of the other hand change nothing and return the
        driving hand's last result. ``ee_pose``: the latest measured EE pose or None."""
        c = msg.controller
        if c.hand != self.cfg.xr_hand:
            return replace(self._last_xr, event=None)
        sample = XRSample(
            position_rub=None if c.position is None else tuple(c.position),
            quat_xyzw=None if c.orientation is None else tuple(c.orientation),
            squeeze=c.buttons.squeeze,
            trigger=c.buttons.trigger,
            tracked=c.tracked,
            emulated=c.emulated,
        )
        if sample.valid:
            self._last_quat = sample.quat_xyzw
        out = self.xr.update(sample, ee_pose)
        self._last_xr = MappedInput(out.action, out.deadman, out.engaged, "xr", out.event)
        return self._last_xr

    def on_xr_event(self, msg: XREvent) -> MappedInput:
        """recenter / tracking_lost / visibility other than 'visible' release the clutch;
        set_forward calibrates the yaw from the driving controller's last pose."""
        if msg.kind == "set_forward":
            return self._set_forward()
        if msg.kind == "visibility" and msg.state == "visible":
            return replace(self._last_xr, event="visibility")
        self.xr.release(msg.kind)
        self._last_xr = MappedInput(None, False, False, "xr", msg.kind)
        return self._last_xr

    def _set_forward(self) -> MappedInput:
        if self._last_quat is None:
            return MappedInput(None, False, False, "xr", "no_pose")
        try:
            yaw = self.xr.set_forward(self._last_quat)
        except ValueError as exc:
            log.warning("forward calibration refused: %s", exc)
            return MappedInput(None, False, False, "xr", "no_pose")
        log.info("XR forward calibrated: yaw %.1f deg", yaw * 57.29577951308232)
        self._last_xr = MappedInput(None, False, False, "xr", "forward_set")
        return self._last_xr

    def release(self) -> None:
        """Stop every device from driving (socket closed, lease lost, watchdog).

        The XR clutch opens (a fresh squeeze is needed); gamepad and keyboard
        output stays None until the next message with the deadman held. Gripper
        states are kept.
        """
        self.xr.release("mapper released")
        self.gamepad.release()
        self.keyboard.release()
        self._last_xr = MappedInput(None, False, False, "xr")

    def reset(self) -> None:
        """Forget all state, including gripper latches and the XR squeeze edge."""
        self.gamepad.reset()
        self.keyboard.reset()
        self.xr.reset()
        self._last_xr = MappedInput(None, False, False, "xr")
        self._last_quat = None
