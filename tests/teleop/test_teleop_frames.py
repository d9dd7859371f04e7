"""WebXR (RUB) to robot base (FLU) conversion, yaw calibration, action assembly."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from teleop.frames import (
    RUB_TO_FLU,
    EEPose,
    fit_unit_box,
    make_action,
    map_position,
    map_rotation,
    webxr_to_base,
    wrap_angle,
    yaw_from_forward,
)
from teleop.rotations import exp_map, log_map, quat_wxyz_to_matrix

comp = st.floats(-1.0, 1.0, allow_nan=False)
vec3 = st.tuples(comp, comp, comp).map(np.array)
quats = st.tuples(comp, comp, comp, comp).filter(lambda q: np.linalg.norm(q) > 0.1)
angles = st.floats(-math.pi, math.pi)


@pytest.mark.parametrize(
    ("rub", "flu"),
    [
        ((1, 0, 0), (0, -1, 0)),  # right -> -y
        ((-1, 0, 0), (0, 1, 0)),  # left -> +y
        ((0, 1, 0), (0, 0, 1)),  # up -> +z
        ((0, 0, 1), (-1, 0, 0)),  # back -> -x
        ((0, 0, -1), (1, 0, 0)),  # forward -> +x
    ],
)
def test_rub_to_flu_axes(rub: tuple[int, ...], flu: tuple[int, ...]) -> None:
    np.testing.assert_array_equal(map_position(rub), flu)


def test_rub_to_flu_is_a_proper_rotation() -> None:
    np.testing.assert_allclose(RUB_TO_FLU @ RUB_TO_FLU.T, np.eye(3))
    assert math.isclose(np.linalg.det(RUB_TO_FLU), 1.0)
    assert not RUB_TO_FLU.flags.writeable


def test_yaw_calibration_turns_forward() -> None:
    forward = (0, 0, -1)
    np.testing.assert_allclose(map_position(forward, math.pi / 2), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(map_position(forward, -math.pi / 2), [0, -1, 0], atol=1e-12)
    # Up stays up whatever the yaw.
    np.testing.assert_allclose(map_position((0, 1, 0), 1.234), [0, 0, 1], atol=1e-12)


@given(angles, st.floats(-1.2, 1.2))
def test_yaw_from_forward_makes_that_direction_robot_x(heading: float, pitch: float) -> None:
    # A direction in RUB: heading about the vertical (0 = WebXR forward), some pitch.
    d = np.array(
        [
            -math.sin(heading) * math.cos(pitch),
            math.sin(pitch),
            -math.cos(heading) * math.cos(pitch),
        ]
    )
    yaw = yaw_from_forward(d)
    mapped = map_position(d, yaw)
    assert abs(mapped[1]) < 1e-9 and mapped[0] > 0
    assert math.isclose(mapped[2], math.sin(pitch), abs_tol=1e-9)


def test_yaw_from_vertical_direction_raises() -> None:
    with pytest.raises(ValueError, match="vertical"):
        yaw_from_forward((0, 1, 0))


@given(quats, vec3, angles)
def test_rotation_and_position_maps_agree(q: tuple[float, ...], v: np.ndarray, yaw: float) -> None:
    r_rub = quat_wxyz_to_matrix(q)
    lhs = map_rotation(r_rub, yaw) @ map_position(v, yaw)
    np.testing.assert_allclose(lhs, map_position(r_rub @ v, yaw), atol=1e-9)


def test_controller_turn_left_is_robot_yaw_left() -> None:
    # Turning about WebXR up (+y) counter-clockwise seen from above -> robot +z rotation.
    turn = exp_map([0, 0.3, 0])
    np.testing.assert_allclose(log_map(map_rotation(turn)), [0, 0, 0.3], atol=1e-12)
    # Rolling about WebXR forward (-z) -> rotation about robot +x.
    roll = exp_map([0, 0, -0.2])
    np.testing.assert_allclose(log_map(map_rotation(roll)), [0.2, 0, 0], atol=1e-12)
    # With a yaw calibration the vertical axis is unchanged.
    np.testing.assert_allclose(log_map(map_rotation(turn, 0.8)), [0, 0, 0.3], atol=1e-12)


def test_webxr_to_base_composition() -> None:
    np.testing.assert_allclose(webxr_to_base(0.0), RUB_TO_FLU)


@given(st.lists(st.floats(-50, 50), min_size=3, max_size=3))
def test_fit_unit_box_keeps_direction(v: list[float]) -> None:
    out = fit_unit_box(v)
    assert np.all(np.abs(out) <= 1.0 + 1e-12)
    if max(abs(x) for x in v) <= 1.0:
        np.testing.assert_array_equal(out, v)
    else:
        assert math.isclose(float(np.max(np.abs(out))), 1.0)
        np.testing.assert_allclose(np.cross(out, v), 0.0, atol=1e-9)
        assert float(np.dot(out, v)) > 0


def test_make_action_layout_and_clip() -> None:
    a = make_action([2.0, 0.0, -1.0], [0.1, 0.2, 0.3], 3.0)
    np.testing.assert_allclose(a, [1.0, 0.0, -0.5, 0.1, 0.2, 0.3, 1.0])
    assert len(a) == 7 and all(isinstance(x, float) for x in a)


def test_ee_pose_validation() -> None:
    pose = EEPose((0.5, 0.0, 0.2), (1.0, 0.0, 0.0, 0.0))
    np.testing.assert_allclose(pose.rot, np.eye(3))
    assert EEPose((0.0, 0.0, 0.0)).rot is None
    with pytest.raises(ValueError, match="position"):
        EEPose((0.0, float("nan"), 0.0))
    with pytest.raises(ValueError, match="quaternion"):
        EEPose((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0))


def test_wrap_angle() -> None:
    assert math.isclose(wrap_angle(3 * math.pi / 2), -math.pi / 2)
    assert math.isclose(wrap_angle(0.5), 0.5)
