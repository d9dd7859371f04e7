"""Rotation maths in numpy: quaternions, rotation matrices and rotation vectors.

Conventions (be explicit, they are the usual source of bugs):

* A rotation matrix ``R`` (3, 3) maps vectors from a body frame into a parent
  frame: ``v_parent = R @ v_body``. A relative rotation *in the parent frame*
  from ``R0`` to ``R1`` is ``R1 @ R0.T`` (left-multiplied).
* Quaternions are unit quaternions in two layouts, always named by suffix:
  ``*_xyzw`` = (x, y, z, w), the WebXR / browser ``DOMPointReadOnly`` order;
  ``*_wxyz`` = (w, x, y, z), the MuJoCo / robot-state order. Both are Hamilton
  quaternions (``i*j = k``) that rotate vectors actively like ``R`` above.
* A rotation vector (axis-angle) ``w`` (3,) is ``angle * unit_axis`` with
  ``angle`` in [0, pi], radians; ``exp_map(w)`` gives ``R``, ``log_map(R)``
  gives ``w`` back.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

_SMALL_ANGLE = 1e-8


def xyzw_to_wxyz(q_xyzw: ArrayLike) -> Array:
    """Reorder a quaternion from (x, y, z, w) to (w, x, y, z)."""
    q = np.asarray(q_xyzw, dtype=np.float64)
    return np.array([q[3], q[0], q[1], q[2]])


def wxyz_to_xyzw(q_wxyz: ArrayLike) -> Array:
    """Reorder a quaternion from (w, x, y, z) to (x, y, z, w)."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    return np.array([q[1], q[2], q[3], q[0]])


def normalize_quat(q: ArrayLike) -> Array:
    """Unit quaternion of ``q`` (any layout); raises ValueError for a (near) zero or
    non-finite quaternion."""
    q = np.asarray(q, dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if q.shape != (4,) or not math.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"not a valid quaternion: {q.tolist()}")
    return q / norm


def quat_wxyz_to_matrix(q_wxyz: ArrayLike) -> Array:
    """Rotation matrix (3, 3) of a quaternion (w, x, y, z); the quaternion is normalised."""
    w, x, y, z = normalize_quat(q_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_xyzw_to_matrix(q_xyzw: ArrayLike) -> Array:
    """Rotation matrix (3, 3) of a quaternion in WebXR order (x, y, z, w)."""
    return quat_wxyz_to_matrix(xyzw_to_wxyz(q_xyzw))


def matrix_to_quat_wxyz(rot: ArrayLike) -> Array:
    """Unit quaternion (w, x, y, z) with w >= 0 of a rotation matrix (3, 3).

    Uses the numerically stable branch on the largest diagonal term (Shepperd).
    """
    m = np.asarray(rot, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + m[0, 0] - m[1, 1] - m[2, 2], 0.0))
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(max(1.0 + m[1, 1] - m[0, 0] - m[2, 2], 0.0))
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(max(1.0 + m[2, 2] - m[0, 0] - m[1, 1], 0.0))
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    out = normalize_quat(q)
    return out if out[0] >= 0 else -out


def matrix_to_quat_xyzw(rot: ArrayLike) -> Array:
    """Unit quaternion in WebXR order (x, y, z, w), w >= 0, of a rotation matrix."""
    return wxyz_to_xyzw(matrix_to_quat_wxyz(rot))


def exp_map(rotvec: ArrayLike) -> Array:
    """Rotation matrix (3, 3) of a rotation vector (3,) in radians (Rodrigues)."""
    w = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(w))
    if angle < _SMALL_ANGLE:
        return np.eye(3) + skew(w)
    axis = w / angle
    k = skew(axis)
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def log_map(rot: ArrayLike) -> Array:
    """Rotation vector (3,) of a rotation matrix, angle in [0, pi] radians."""
    w, x, y, z = matrix_to_quat_wxyz(rot)
    vec = np.array([x, y, z])
    sin_half = float(np.linalg.norm(vec))
    if sin_half < _SMALL_ANGLE:
        return 2.0 * vec / max(w, _SMALL_ANGLE)
    angle = 2.0 * math.atan2(sin_half, w)
    return angle * vec / sin_half


def rotation_angle(rot: ArrayLike) -> float:
    """Angle (radians, in [0, pi]) of a rotation matrix."""
    return float(np.linalg.norm(log_map(rot)))


def skew(v: ArrayLike) -> Array:
    """Cross-product matrix (3, 3) of a vector (3,): ``skew(a) @ b == cross(a, b)``."""
    x, y, z = np.asarray(v, dtype=np.float64)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def rot_z(angle_rad: float) -> Array:
    """Rotation matrix (3, 3) about +z by ``angle_rad`` (counter-clockwise seen from +z)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def scale_rotation(rot: ArrayLike, factor: float) -> Array:
    """The rotation about the same axis by ``factor`` times the angle: Exp(f * Log(R))."""
    return exp_map(factor * log_map(rot))
