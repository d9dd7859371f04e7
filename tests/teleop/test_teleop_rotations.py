"""Quaternion / rotation-matrix / rotation-vector maths."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from teleop.rotations import (
    exp_map,
    log_map,
    matrix_to_quat_wxyz,
    matrix_to_quat_xyzw,
    normalize_quat,
    quat_wxyz_to_matrix,
    quat_xyzw_to_matrix,
    rot_z,
    rotation_angle,
    scale_rotation,
    wxyz_to_xyzw,
    xyzw_to_wxyz,
)

comp = st.floats(-1.0, 1.0, allow_nan=False)
quats = st.tuples(comp, comp, comp, comp).filter(lambda q: np.linalg.norm(q) > 0.1)
rotvecs = (
    st.tuples(comp, comp, comp)
    .map(lambda v: np.array(v) * 3.0)
    .filter(lambda v: np.linalg.norm(v) < math.pi - 1e-3)
)


def _is_rotation(r: np.ndarray) -> bool:
    return np.allclose(r @ r.T, np.eye(3), atol=1e-9) and math.isclose(np.linalg.det(r), 1.0)


def test_known_quaternion_about_z() -> None:
    s = math.sqrt(0.5)
    r = quat_xyzw_to_matrix([0.0, 0.0, s, s])  # +90 deg about z, WebXR order
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(quat_wxyz_to_matrix([s, 0.0, 0.0, s]), r, atol=1e-12)
    np.testing.assert_allclose(r, rot_z(math.pi / 2), atol=1e-12)


def test_order_conversions_are_inverse() -> None:
    q = [0.1, 0.2, 0.3, 0.9]
    np.testing.assert_array_equal(xyzw_to_wxyz(q), [0.9, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(wxyz_to_xyzw(xyzw_to_wxyz(q)), q)


@pytest.mark.parametrize("bad", [[0, 0, 0, 0], [float("nan"), 0, 0, 1], [1, 0, 0]])
def test_invalid_quaternions_raise(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="quaternion"):
        normalize_quat(bad)


@given(quats)
def test_quaternion_matrix_round_trip(q: tuple[float, ...]) -> None:
    r = quat_wxyz_to_matrix(q)
    assert _is_rotation(r)
    back = matrix_to_quat_wxyz(r)
    unit = normalize_quat(q)
    assert np.allclose(back, unit, atol=1e-9) or np.allclose(back, -unit, atol=1e-9)
    np.testing.assert_allclose(quat_xyzw_to_matrix(matrix_to_quat_xyzw(r)), r, atol=1e-9)


@given(rotvecs)
def test_exp_log_round_trip(w: np.ndarray) -> None:
    r = exp_map(w)
    assert _is_rotation(r)
    np.testing.assert_allclose(log_map(r), w, atol=1e-7)
    assert math.isclose(rotation_angle(r), float(np.linalg.norm(w)), abs_tol=1e-7)


def test_log_at_half_turn_and_identity() -> None:
    np.testing.assert_allclose(np.abs(log_map(rot_z(math.pi))), [0, 0, math.pi], atol=1e-9)
    np.testing.assert_allclose(log_map(np.eye(3)), np.zeros(3), atol=1e-15)
    np.testing.assert_allclose(log_map(exp_map([1e-10, 0, 0])), [1e-10, 0, 0], atol=1e-16)


@given(rotvecs, st.floats(0.0, 1.0))
def test_scale_rotation_scales_angle_same_axis(w: np.ndarray, f: float) -> None:
    np.testing.assert_allclose(log_map(scale_rotation(exp_map(w), f)), f * w, atol=1e-7)


def test_exp_matches_rot_z() -> None:
    np.testing.assert_allclose(exp_map([0, 0, 0.7]), rot_z(0.7), atol=1e-12)
