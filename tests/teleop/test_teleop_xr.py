"""WebXR clutch: frames, relative rotation composition, re-engage, clamps, safety releases."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tandem.settings.teleop import TeleopSettings
from teleop.frames import ActionLimits, EEPose, map_rotation, webxr_to_base
from teleop.rotations import (
    exp_map,
    log_map,
    matrix_to_quat_wxyz,
    matrix_to_quat_xyzw,
    quat_wxyz_to_matrix,
    rotation_angle,
)
from teleop.xr import XRClutch, XRSample

IDENTITY_XYZW = (0.0, 0.0, 0.0, 1.0)
HOME = EEPose((0.5, 0.0, 0.3), (1.0, 0.0, 0.0, 0.0))
BIG = ActionLimits(max_translation_m=100.0, max_rotation_rad=100.0)


def sample(p=(0.0, 1.0, -0.3), q=IDENTITY_XYZW, squeeze=1.0, trigger=0.0, **kw) -> XRSample:
    return XRSample(tuple(float(x) for x in p), tuple(float(x) for x in q), squeeze, trigger, **kw)


def engaged_clutch(cfg=None, limits=None, ee=HOME, p=(0.0, 1.0, -0.3), q=IDENTITY_XYZW):
    clutch = XRClutch(cfg or TeleopSettings(), limits)
    out = clutch.update(sample(p, q), ee)
    assert out.engaged and out.event == "engaged"
    return clutch, out


def test_engage_gives_zero_motion() -> None:
    _, out = engaged_clutch()
    assert out.action == [0.0] * 6 + [-1.0]


@pytest.mark.parametrize(
    ("move_rub", "index", "sign"),
    [
        ((0, 0, -0.01), 0, 1),  # controller forward -> robot +x
        ((0, 0, 0.01), 0, -1),
        ((0.01, 0, 0), 1, -1),  # controller right -> robot -y
        ((-0.01, 0, 0), 1, 1),
        ((0, 0.01, 0), 2, 1),  # up -> +z
    ],
)
def test_translation_directions(move_rub, index: int, sign: int) -> None:
    clutch, _ = engaged_clutch()
    out = clutch.update(sample(np.add((0.0, 1.0, -0.3), move_rub)), HOME)
    expected = [0.0] * 6
    expected[index] = sign * 0.01 / 0.05
    np.testing.assert_allclose(out.action[:6], expected, atol=1e-9)


def test_yaw_calibration_and_scale() -> None:
    cfg = TeleopSettings(xr_yaw_deg=90.0, xr_scale=2.0)
    clutch, _ = engaged_clutch(cfg)
    out = clutch.update(sample((0.0, 1.0, -0.31)), HOME)  # 1 cm forward
    np.testing.assert_allclose(out.action[:3], [0.0, 0.4, 0.0], atol=1e-9)


def test_rotation_direction() -> None:
    clutch, _ = engaged_clutch()
    turn_left = matrix_to_quat_xyzw(exp_map([0.0, 0.1, 0.0]))  # about WebXR up
    out = clutch.update(sample(q=turn_left), HOME)
    np.testing.assert_allclose(out.action[3:6], [0.0, 0.0, 0.5], atol=1e-9)


def test_gripper_follows_trigger() -> None:
    clutch, _ = engaged_clutch()
    assert clutch.update(sample(trigger=1.0), HOME).action[6] == 1.0
    assert clutch.update(sample(trigger=0.25), HOME).action[6] == -0.5


def test_action_is_error_to_measured_pose() -> None:
    clutch, _ = engaged_clutch()
    moved = sample((0.0, 1.0, -0.32))  # target 2 cm forward of HOME
    assert math.isclose(clutch.update(moved, HOME).action[0], 0.4)
    halfway = EEPose((0.51, 0.0, 0.3), HOME.quat_wxyz)
    assert math.isclose(clutch.update(moved, halfway).action[0], 0.2)
    arrived = EEPose((0.52, 0.0, 0.3), HOME.quat_wxyz)
    np.testing.assert_allclose(clutch.update(moved, arrived).action[:6], 0.0, atol=1e-12)


comp = st.floats(-1.0, 1.0, allow_nan=False)
quats = st.tuples(comp, comp, comp, comp).filter(lambda q: np.linalg.norm(q) > 0.1)
small_rotvec = st.tuples(comp, comp, comp).map(lambda v: 0.5 * np.array(v))
offset = st.tuples(comp, comp, comp).map(lambda v: 0.05 * np.array(v))
yaws = st.floats(-180.0, 180.0)


@settings(max_examples=200, deadline=None)
@given(
    q_ctrl0=quats,
    q_ee0=quats,
    q_ee_now=quats,
    delta_rub=small_rotvec,
    move_rub=offset,
    yaw_deg=yaws,
    rot_scale=st.floats(0.2, 2.0),
)
def test_relative_rotation_composition(
    *, q_ctrl0, q_ee0, q_ee_now, delta_rub, move_rub, yaw_deg, rot_scale
) -> None:
    """Applying the computed action to the measured pose reproduces the clutch target,
    whose rotation relative to the snapshot is M dR M^T (scaled)."""
    cfg = TeleopSettings(xr_yaw_deg=yaw_deg, xr_rotation_scale=rot_scale, xr_jump_rad=3.2)
    r_ctrl0 = quat_wxyz_to_matrix(q_ctrl0)
    ee0 = EEPose((0.4, 0.1, 0.2), tuple(q_ee0))
    clutch, out = engaged_clutch(cfg, BIG, ee0, q=matrix_to_quat_xyzw(r_ctrl0))
    np.testing.assert_allclose(out.action[:6], 0.0, atol=1e-9)  # no jump on engage

    r_ctrl = exp_map(delta_rub) @ r_ctrl0  # world-frame (RUB) rotation of the controller
    p_ctrl = np.array([0.0, 1.0, -0.3]) + move_rub
    ee_now = EEPose((0.45, 0.05, 0.25), tuple(q_ee_now))
    out = clutch.update(sample(p_ctrl, matrix_to_quat_xyzw(r_ctrl)), ee_now)

    yaw = math.radians(yaw_deg)
    m = webxr_to_base(yaw)
    r_target = exp_map(rot_scale * log_map(m @ r_ctrl @ r_ctrl0.T @ m.T)) @ ee0.rot
    p_target = ee0.p + m @ move_rub
    a = np.array(out.action)
    np.testing.assert_allclose(ee_now.p + a[:3] * BIG.max_translation_m, p_target, atol=1e-9)
    applied = exp_map(a[3:6] * BIG.max_rotation_rad) @ ee_now.rot
    assert rotation_angle(applied @ r_target.T) < 1e-6
    # The target's rotation relative to the EE snapshot is the mapped controller delta.
    expected_rel = exp_map(rot_scale * log_map(map_rotation(exp_map(delta_rub), yaw)))
    assert rotation_angle((r_target @ ee0.rot.T) @ expected_rel.T) < 1e-6


def test_clamp_keeps_direction() -> None:
    cfg = TeleopSettings(xr_jump_m=1.0)
    clutch, _ = engaged_clutch(cfg)
    out = clutch.update(sample((-0.3, 1.0, -0.9)), HOME)  # 0.6 m forward, 0.3 m left
    a = out.action
    assert a[0] == 1.0 and math.isclose(a[1], 0.5)
    assert all(-1.0 <= x <= 1.0 for x in a)
    big_turn = matrix_to_quat_xyzw(exp_map([0.0, 0.5, 0.0]))
    out = clutch.update(sample((-0.3, 1.0, -0.9), big_turn), HOME)
    assert out.action[5] == 1.0


def test_reengage_does_not_jump() -> None:
    cfg = TeleopSettings()
    clutch, _ = engaged_clutch(cfg)
    assert math.isclose(clutch.update(sample((0.0, 1.0, -0.33)), HOME).action[0], 0.6)
    robot = EEPose((0.53, 0.0, 0.3), HOME.quat_wxyz)  # the robot followed
    assert clutch.update(sample((0.0, 1.0, -0.33), squeeze=0.0), robot).event == "released"
    # The operator repositions the hand while released (in small, valid steps).
    turned = matrix_to_quat_xyzw(exp_map([0.0, 0.4, 0.0]))
    for z in np.linspace(-0.33, -0.1, 6):
        out = clutch.update(sample((0.1, 1.1, z), turned, squeeze=0.0), robot)
        assert out.action is None and not out.engaged
    out = clutch.update(sample((0.1, 1.1, -0.1), turned), robot)
    assert out.event == "engaged"
    np.testing.assert_allclose(out.action[:6], 0.0, atol=1e-12)
    out = clutch.update(sample((0.1, 1.1, -0.11), turned), robot)
    np.testing.assert_allclose(out.action[:6], [0.2, 0, 0, 0, 0, 0], atol=1e-9)


def test_squeeze_hysteresis() -> None:
    clutch = XRClutch(TeleopSettings(xr_squeeze_threshold=0.5))
    assert not clutch.update(sample(squeeze=0.45), HOME).engaged
    assert clutch.update(sample(squeeze=0.5), HOME).engaged
    assert clutch.update(sample(squeeze=0.45), HOME).engaged
    assert not clutch.update(sample(squeeze=0.39), HOME).engaged


def test_holding_squeeze_without_engage_does_not_engage() -> None:
    clutch = XRClutch(TeleopSettings())
    out = clutch.update(sample(), None)
    assert out.event == "no_ee_pose" and not out.engaged and out.action is None
    assert not clutch.update(sample(), HOME).engaged  # still the same press
    clutch.update(sample(squeeze=0.0), HOME)
    assert clutch.update(sample(), HOME).engaged


@pytest.mark.parametrize("jump", [(0.2, 0.0, 0.0), "rotation"])
def test_pose_jump_releases_and_needs_fresh_press(jump) -> None:
    clutch, _ = engaged_clutch()
    if jump == "rotation":
        bad = sample(q=matrix_to_quat_xyzw(exp_map([0.0, 0.0, 0.8])))
    else:
        bad = sample(np.add((0.0, 1.0, -0.3), jump))
    out = clutch.update(bad, HOME)
    assert out.event == "jump_rejected" and out.action is None and not out.engaged
    assert clutch.update(bad, HOME).action is None  # same pose again: no jump, but no press
    clutch.update(sample(squeeze=0.0), HOME)  # release (a jump back is ignored while released)
    out = clutch.update(sample(), HOME)
    assert out.engaged and out.action[:6] == [0.0] * 6


@pytest.mark.parametrize("lost", [{"tracked": False}, {"emulated": True}])
def test_tracking_loss_releases(lost) -> None:
    clutch, _ = engaged_clutch()
    out = clutch.update(sample(**lost), HOME)
    assert out.event == "tracking_lost" and out.action is None and not out.engaged
    assert out.deadman
    assert not clutch.update(sample(), HOME).engaged  # tracking back, still same press
    clutch.update(sample(squeeze=0.0), HOME)
    assert clutch.update(sample(), HOME).engaged


def test_missing_pose_is_tracking_loss() -> None:
    clutch, _ = engaged_clutch()
    out = clutch.update(XRSample(None, None, 1.0, 0.0, tracked=True), HOME)
    assert out.event == "tracking_lost"


def test_forced_release_and_ee_pose_gaps() -> None:
    clutch, _ = engaged_clutch()
    out = clutch.update(sample(), None)  # engaged but no measurement this time
    assert out.engaged and out.action is None and out.event == "no_ee_pose"
    assert clutch.release("test") is True
    assert clutch.release("again") is False
    assert not clutch.update(sample(), HOME).engaged


def test_translation_only_without_measured_orientation() -> None:
    ee = EEPose((0.5, 0.0, 0.3))
    clutch, _ = engaged_clutch(ee=ee)
    turned = matrix_to_quat_xyzw(exp_map([0.0, 0.2, 0.0]))
    out = clutch.update(sample((0.0, 1.0, -0.31), turned), ee)
    np.testing.assert_allclose(out.action[:6], [0.2, 0, 0, 0, 0, 0], atol=1e-9)


def test_set_forward_calibration() -> None:
    clutch, _ = engaged_clutch()
    pointing_right = matrix_to_quat_xyzw(exp_map([0.0, -math.pi / 2, 0.0]))  # -z -> +x (RUB)
    clutch.set_forward(pointing_right)
    assert not clutch.engaged
    clutch.update(sample(squeeze=0.0), HOME)
    clutch.update(sample(), HOME)
    out = clutch.update(sample((0.01, 1.0, -0.3)), HOME)  # hand moves to its right
    np.testing.assert_allclose(out.action[:3], [0.2, 0.0, 0.0], atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.tuples(comp, comp, comp),
            quats,
            st.floats(0, 1),
            st.floats(0, 1),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=15,
    )
)
def test_any_sequence_gives_bounded_actions(seq) -> None:
    clutch = XRClutch(TeleopSettings())
    for p, q, squeeze, trigger, tracked, emulated in seq:
        q_xyzw = tuple(matrix_to_quat_xyzw(quat_wxyz_to_matrix(q)))
        out = clutch.update(
            sample(p, q_xyzw, squeeze, trigger, tracked=tracked, emulated=emulated), HOME
        )
        if out.action is not None:
            assert out.engaged and len(out.action) == 7
            assert all(math.isfinite(x) and -1 <= x <= 1 for x in out.action)
        else:
            assert out.event in (None, "released", "tracking_lost", "jump_rejected") or out.engaged


def test_quaternion_order_is_webxr_xyzw() -> None:
    # (x, y, z, w) = (0, sin(a/2), 0, cos(a/2)) is a turn about WebXR up; in wxyz this would
    # read as a different rotation, so a swapped order would fail here.
    a = 0.1
    clutch, _ = engaged_clutch()
    out = clutch.update(sample(q=(0.0, math.sin(a / 2), 0.0, math.cos(a / 2))), HOME)
    np.testing.assert_allclose(out.action[3:6], [0, 0, a / 0.2], atol=1e-9)
    np.testing.assert_allclose(matrix_to_quat_wxyz(np.eye(3)), [1, 0, 0, 0])
