"""Coordinate frames: WebXR (RUB) to the robot base frame (FLU), yaw calibration,
end-effector poses and the normalised action layout.

Frames:

* **WebXR reference space** (``local-floor``): right-handed, x right, y up,
  z back (towards the operator), i.e. RUB. Positions in metres.
* **Robot base frame**: right-handed, x forward, y left, z up (FLU, ROS REP-103).
  Positions in metres.

The fixed change of basis is ``RUB_TO_FLU``: ``p_flu = RUB_TO_FLU @ p_rub``.
On top of it a yaw-only calibration ``rot_z(yaw)`` turns the operator's forward
(WebXR -z after the change of basis) into the robot's +x. The whole map is
``M = rot_z(yaw) @ RUB_TO_FLU``: positions map as ``M @ p`` and world-frame
rotations as ``M @ R @ M.T``. Keeping the calibration yaw-only keeps gravity
pointing down.

The 7-D action is ``[dx, dy, dz, drx, dry, drz, gripper]`` in [-1, 1]:
translation in units of ``max_translation_m`` and a rotation vector (base frame,
applied on the left: ``R_new = exp_map(d * max_rotation_rad) @ R_ee``) in units
of ``max_rotation_rad``; gripper -1 open .. +1 closed (absolute).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from teleop.rotations import Array, quat_wxyz_to_matrix, rot_z

RUB_TO_FLU: Array = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
RUB_TO_FLU.setflags(write=False)

TRANSLATION = slice(0, 3)
ROTATION = slice(3, 6)
GRIPPER = 6
GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0


def webxr_to_base(yaw_rad: float = 0.0) -> Array:
    """The map ``M`` (3, 3) from WebXR RUB coordinates to the robot base frame FLU.

    ``yaw_rad`` is the calibration about the vertical: with ``yaw_rad = 0`` the
    operator's forward (WebXR -z) is robot +x; with ``pi/2`` it is robot +y.
    """
    return rot_z(yaw_rad) @ RUB_TO_FLU


def map_position(p_rub: ArrayLike, yaw_rad: float = 0.0) -> Array:
    """A WebXR position or displacement (3,) RUB, metres, in the robot base frame (FLU)."""
    return webxr_to_base(yaw_rad) @ np.asarray(p_rub, dtype=np.float64)


def map_rotation(r_rub: ArrayLike, yaw_rad: float = 0.0) -> Array:
    """A world-frame rotation matrix (3, 3) of the WebXR space, expressed in the base frame."""
    m = webxr_to_base(yaw_rad)
    return m @ np.asarray(r_rub, dtype=np.float64) @ m.T


def yaw_from_forward(forward_rub: ArrayLike) -> float:
    """Calibration yaw (radians) that makes the given WebXR direction the robot's +x.

    ``forward_rub`` (3,) is where the operator points ("this way is forward"),
    in RUB. Only its horizontal part counts; raises ValueError when it is
    (nearly) vertical.
    """
    d = RUB_TO_FLU @ np.asarray(forward_rub, dtype=np.float64)
    if math.hypot(d[0], d[1]) < 1e-6:
        raise ValueError("forward direction is vertical; point the controller horizontally")
    return -math.atan2(d[1], d[0])


def wrap_angle(angle_rad: float) -> float:
    """``angle_rad`` wrapped to [-pi, pi)."""
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class EEPose:
    """A measured end-effector pose in the robot base frame (FLU).

    ``position``: (3,) metres. ``quat_wxyz``: (4,) orientation as (w, x, y, z)
    (the MuJoCo / robot-state order), or None when the robot does not report
    its orientation (then the XR clutch drives translation only).
    """

    position: tuple[float, float, float]
    quat_wxyz: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.position) != 3 or not all(math.isfinite(x) for x in self.position):
            raise ValueError(f"EEPose.position must be 3 finite numbers, got {self.position}")
        if self.quat_wxyz is not None:
            quat_wxyz_to_matrix(self.quat_wxyz)  # validates shape, finiteness and norm

    @property
    def p(self) -> Array:
        """Position (3,), metres, base frame."""
        return np.array(self.position, dtype=np.float64)

    @property
    def rot(self) -> Array | None:
        """Orientation as a rotation matrix (3, 3), body to base, or None if unknown."""
        return None if self.quat_wxyz is None else quat_wxyz_to_matrix(self.quat_wxyz)


@dataclass(frozen=True)
class ActionLimits:
    """Per-step limits the bridge multiplies the normalised action by."""

    max_translation_m: float = 0.05
    max_rotation_rad: float = 0.2

    def __post_init__(self) -> None:
        if not (self.max_translation_m > 0 and self.max_rotation_rad > 0):
            raise ValueError(f"action limits must be positive, got {self}")


def fit_unit_box(v: ArrayLike) -> Array:
    """Scale a vector uniformly so that every component lies in [-1, 1].

    Unlike a per-component clip this keeps the direction (the rotation axis,
    the direction of travel) and only shortens the step.
    """
    v = np.asarray(v, dtype=np.float64)
    peak = float(np.max(np.abs(v))) if v.size else 0.0
    return v / peak if peak > 1.0 else v.copy()


def make_action(translation: ArrayLike, rotation: ArrayLike, gripper: float) -> list[float]:
    """Assemble the 7-D action from normalised parts; translation and rotation are fitted
    into the unit box (direction kept), the gripper is clipped to [-1, 1]."""
    t = fit_unit_box(translation)
    r = fit_unit_box(rotation)
    g = float(np.clip(gripper, GRIPPER_OPEN, GRIPPER_CLOSED))
    return [*map(float, t), *map(float, r), g]
