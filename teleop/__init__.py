"""Teleoperation mapping: gamepad, WebXR controller and keyboard input to robot actions.

Pure Python and numpy (no I/O). The server calls ``InputMapper``; the maths lives
in ``teleop.rotations`` and ``teleop.frames``; the device state machines in
``teleop.gamepad``, ``teleop.xr`` and ``teleop.keyboard``. See docs/teleop.md.
"""

from teleop.frames import ActionLimits, EEPose
from teleop.mapper import InputMapper, MappedInput

__all__ = ["ActionLimits", "EEPose", "InputMapper", "MappedInput"]
