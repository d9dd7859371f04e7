"""Small quaternion helpers (numpy, wxyz convention, Hamilton product)."""

from __future__ import annotations

import numpy as np


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of two quaternions (4,) wxyz."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse of a unit quaternion)."""
    return np.array([q[0], -q[1], -q[2], -q[3]])


def rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    """Unit quaternion of the rotation vector ``v`` (3,), axis times angle in radians."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    half = 0.5 * angle
    return np.concatenate([[np.cos(half)], np.sin(half) * np.asarray(v) / angle])


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) of a unit quaternion, angle in [0, pi]."""
    q = q if q[0] >= 0 else -q
    sin_half = float(np.linalg.norm(q[1:]))
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(sin_half, q[0])
    return q[1:] / sin_half * angle


def rotation_between(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """World-frame rotation vector r with quat(r) * current = target."""
    return quat_to_rotvec(quat_mul(target, quat_conj(current)))


def quat_x_axis(q: np.ndarray) -> np.ndarray:
    """First column (3,) of the rotation matrix of q: the body x axis in the world frame."""
    w, x, y, z = q
    return np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)])


def yaw_of(q: np.ndarray) -> float:
    """Heading (rad) of the body x axis projected on the world xy plane."""
    axis = quat_x_axis(q)
    return float(np.arctan2(axis[1], axis[0]))


def wrap(angle: float, period: float = 2 * np.pi) -> float:
    """Angle wrapped into [-period / 2, period / 2)."""
    return float((angle + 0.5 * period) % period - 0.5 * period)


def yaw_quat(yaw: float) -> np.ndarray:
    """Quaternion of a rotation by ``yaw`` radians about world z."""
    return np.array([np.cos(0.5 * yaw), 0.0, 0.0, np.sin(0.5 * yaw)])
