"""WebXR controller clutch: relative controller motion to end-effector actions.

Inputs per XR frame: the grip pose of the driving controller in the WebXR
``local-floor`` space (RUB, metres; quaternion in WebXR order x, y, z, w), the
squeeze and trigger values (0..1), and the tracking flags. The measured
end-effector pose comes from the robot (base frame FLU; quaternion w, x, y, z).

Clutch (squeeze = grip button):

* **Engage** on a rising edge of the squeeze (with hysteresis) while tracked and
  with a measured end-effector pose: snapshot the mapped controller pose
  ``(p_c0, R_c0)`` and the measured ``(p_ee0, R_ee0)``.
* **While engaged** the target is
  ``p* = p_ee0 + s * (p_c - p_c0)`` and
  ``R* = Exp(s_r * Log(R_c @ R_c0.T)) @ R_ee0`` (a base-frame relative
  rotation, applied on the left), where controller poses are mapped with
  ``M = rot_z(yaw) @ RUB_TO_FLU``. The action is the error to the *measured*
  pose: ``(p* - p_ee) / max_translation_m`` and
  ``Log(R* @ R_ee.T) / max_rotation_rad``, each fitted into [-1, 1] with its
  direction kept. Repeated samples between robot ticks give the same action,
  and lag or clamping does not accumulate drift. Without a measured
  orientation the rotation part is zero (translation only).
* **Gripper** = ``2 * trigger - 1`` (absolute: released trigger = open).
* **Release** when the squeeze is let go, and forced on tracking loss (no pose
  or ``emulatedPosition``), on a pose jump larger than ``xr_jump_m`` /
  ``xr_jump_rad`` between consecutive samples (the sample is rejected and the
  clutch released: the jump is treated as untrustworthy tracking), on a
  reference-space reset, visibility change or ``release()``. After any release
  a fresh squeeze press is needed; it takes a new snapshot, so re-engaging never
  makes the robot jump.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from tandem.settings.teleop import TeleopSettings
from teleop.frames import ActionLimits, EEPose, make_action, webxr_to_base, yaw_from_forward
from teleop.rotations import Array, log_map, quat_xyzw_to_matrix, rotation_angle, scale_rotation

log = logging.getLogger(__name__)

SQUEEZE_HYSTERESIS = 0.1
GRIP_FORWARD = np.array([0.0, 0.0, -1.0])  # grip space: -z runs along the controller


@dataclass(frozen=True)
class XRSample:
    """One controller sample. ``position_rub`` (3,) metres and ``quat_xyzw`` (4,) are the
    grip pose in the WebXR reference space, or None when the browser has no pose."""

    position_rub: tuple[float, ...] | None
    quat_xyzw: tuple[float, ...] | None
    squeeze: float = 0.0
    trigger: float = 0.0
    tracked: bool = True
    emulated: bool = False

    @property
    def valid(self) -> bool:
        """A pose we may follow: present, tracked and not an emulated (estimated) position."""
        return (
            self.tracked
            and not self.emulated
            and self.position_rub is not None
            and self.quat_xyzw is not None
        )


@dataclass(frozen=True)
class Snapshot:
    """Clutch origin: controller pose mapped to the base frame and the measured EE pose."""

    p_ctrl: Array
    r_ctrl: Array
    p_ee: Array
    r_ee: Array | None


@dataclass(frozen=True)
class ClutchOutput:
    """``action``: 7-D list or None (hold). ``event``: what changed at this sample, one of
    engaged, released, tracking_lost, jump_rejected, no_ee_pose, or None."""

    action: list[float] | None
    engaged: bool
    deadman: bool
    event: str | None = None


def clutch_target(
    snap: Snapshot, p_ctrl: Array, r_ctrl: Array, scale: float, rot_scale: float
) -> tuple[Array, Array | None]:
    """Target EE pose (base frame) from the mapped controller pose and the snapshot."""
    p_target = snap.p_ee + scale * (p_ctrl - snap.p_ctrl)
    if snap.r_ee is None:
        return p_target, None
    delta = scale_rotation(r_ctrl @ snap.r_ctrl.T, rot_scale)
    return p_target, delta @ snap.r_ee


def pose_error(
    p_target: Array, r_target: Array | None, ee: EEPose, limits: ActionLimits
) -> tuple[Array, Array]:
    """Normalised (not yet clipped) translation and rotation steps from ``ee`` to the target:
    ``ee.p + t * max_t == p_target`` and ``exp(r * max_r) @ ee.rot == r_target``."""
    t = (p_target - ee.p) / limits.max_translation_m
    r_ee = ee.rot
    if r_target is None or r_ee is None:
        return t, np.zeros(3)
    return t, log_map(r_target @ r_ee.T) / limits.max_rotation_rad


class XRClutch:
    """The clutch state machine for one controller; see the module docstring."""

    def __init__(self, cfg: TeleopSettings, limits: ActionLimits | None = None) -> None:
        self.cfg = cfg
        self.limits = limits or ActionLimits()
        self.yaw_rad = math.radians(cfg.xr_yaw_deg)
        self.reset()

    def reset(self) -> None:
        """Forget the clutch, the squeeze edge and the previous sample."""
        self.snapshot: Snapshot | None = None
        self._pressed = False
        self._prev: tuple[Array, Array] | None = None

    @property
    def engaged(self) -> bool:
        return self.snapshot is not None

    def release(self, reason: str = "released") -> bool:
        """Force the clutch open (a fresh squeeze press re-engages). True if it was engaged."""
        was = self.engaged
        if was:
            log.info("XR clutch released: %s", reason)
        self.snapshot = None
        self._prev = None
        return was

    def set_forward(self, quat_xyzw: tuple[float, ...]) -> float:
        """Calibrate: the controller's current pointing direction becomes robot +x.
        Releases the clutch; returns the new yaw in radians."""
        forward = quat_xyzw_to_matrix(quat_xyzw) @ GRIP_FORWARD
        self.yaw_rad = yaw_from_forward(forward)
        self.release("forward calibrated")
        return self.yaw_rad

    def update(self, sample: XRSample, ee: EEPose | None) -> ClutchOutput:
        """Feed one controller sample and the latest measured EE pose (or None)."""
        threshold = self.cfg.xr_squeeze_threshold - (SQUEEZE_HYSTERESIS if self._pressed else 0)
        pressed = sample.squeeze >= threshold
        rising = pressed and not self._pressed
        self._pressed = pressed
        if not pressed:
            event = "released" if self.release() else None
            self._remember(sample)
            return ClutchOutput(None, False, False, event)
        if not sample.valid:
            event = "tracking_lost" if self.release("tracking lost") else None
            return ClutchOutput(None, False, True, event)
        assert sample.position_rub is not None and sample.quat_xyzw is not None
        p_rub = np.asarray(sample.position_rub, dtype=np.float64)
        r_rub = quat_xyzw_to_matrix(sample.quat_xyzw)
        if self._jumped(p_rub, r_rub):
            self.release("pose jump")
            self._prev = (p_rub, r_rub)
            return ClutchOutput(None, False, True, "jump_rejected")
        self._prev = (p_rub, r_rub)
        m = webxr_to_base(self.yaw_rad)
        p_ctrl, r_ctrl = m @ p_rub, m @ r_rub @ m.T
        event = None
        if rising:
            if ee is None:
                return ClutchOutput(None, False, True, "no_ee_pose")
            self.snapshot = Snapshot(p_ctrl, r_ctrl, ee.p, ee.rot)
            event = "engaged"
        if self.snapshot is None:
            return ClutchOutput(None, False, True, event)
        if ee is None:
            return ClutchOutput(None, True, True, "no_ee_pose")
        p_t, r_t = clutch_target(
            self.snapshot, p_ctrl, r_ctrl, self.cfg.xr_scale, self.cfg.xr_rotation_scale
        )
        t, r = pose_error(p_t, r_t, ee, self.limits)
        gripper = 2.0 * min(max(sample.trigger, 0.0), 1.0) - 1.0
        return ClutchOutput(make_action(t, r, gripper), True, True, event)

    def _remember(self, sample: XRSample) -> None:
        """Keep a valid sample as the reference for the next jump check."""
        if sample.valid:
            assert sample.position_rub is not None and sample.quat_xyzw is not None
            self._prev = (
                np.asarray(sample.position_rub, dtype=np.float64),
                quat_xyzw_to_matrix(sample.quat_xyzw),
            )

    def _jumped(self, p_rub: Array, r_rub: Array) -> bool:
        if self._prev is None:
            return False
        p_prev, r_prev = self._prev
        dist = float(np.linalg.norm(p_rub - p_prev))
        angle = rotation_angle(r_rub @ r_prev.T)
        if dist > self.cfg.xr_jump_m or angle > self.cfg.xr_jump_rad:
            log.warning("XR pose jump rejected: %.3f m, %.3f rad between samples", dist, angle)
            return True
        return False
