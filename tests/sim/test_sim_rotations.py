"""Quaternion helpers agree with MuJoCo's own functions."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from sim import rotations as rot


def random_quat(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


@pytest.mark.parametrize("seed", range(5))
def test_mul_and_rotvec_match_mujoco(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = random_quat(rng), random_quat(rng)
    expected = np.empty(4)
    mujoco.mju_mulQuat(expected, a, b)
    np.testing.assert_allclose(rot.quat_mul(a, b), expected, atol=1e-12)
    vec = rng.uniform(-1, 1, 3)
    q = np.empty(4)
    mujoco.mju_axisAngle2Quat(q, vec / np.linalg.norm(vec), np.linalg.norm(vec))
    np.testing.assert_allclose(rot.rotvec_to_quat(vec), q, atol=1e-12)
    np.testing.assert_allclose(rot.quat_to_rotvec(q), vec, atol=1e-9)
    np.testing.assert_allclose(rot.quat_to_rotvec(-q), vec, atol=1e-9)


def test_rotation_between_and_yaw() -> None:
    rng = np.random.default_rng(0)
    current = random_quat(rng)
    delta = np.array([0.1, -0.2, 0.3])
    target = rot.quat_mul(rot.rotvec_to_quat(delta), current)
    np.testing.assert_allclose(rot.rotation_between(target, current), delta, atol=1e-9)
    assert rot.yaw_of(rot.yaw_quat(0.7)) == pytest.approx(0.7)
    assert rot.wrap(np.pi / 4 + 0.1, np.pi / 2) == pytest.approx(-np.pi / 4 + 0.1)
    np.testing.assert_allclose(rot.quat_to_rotvec(np.array([1.0, 0, 0, 0])), np.zeros(3))
