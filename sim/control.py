"""End-effector control inside the simulator: damped-least-squares differential IK.

The controller turns a target pose of the ``grip`` site (position in metres and a unit quaternion
wxyz, both in the world = robot base frame) into joint targets for the arm's position servos. It
iterates Gauss-Newton steps with damped least squares on the site Jacobian from ``mj_jacSite``,
on a scratch ``MjData`` so the simulation state is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class IKConfig:
    """Tuning of the IK solver (units: metres, radians)."""

    damping: float = 0.03
    iterations: int = 12
    tolerance: float = 1e-4
    max_joint_step_rad: float = 0.25
    rot_weight: float = 0.5


def quat_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) that turns ``current`` into ``target`` (both wxyz), world frame."""
    conj = np.empty(4)
    mujoco.mju_negQuat(conj, current)
    diff = np.empty(4)
    mujoco.mju_mulQuat(diff, target, conj)
    if diff[0] < 0:
        diff = -diff
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, diff, 1.0)
    return vel


def site_quat(data: mujoco.MjData, site_id: int) -> np.ndarray:
    """Orientation (4,) wxyz of a site in the world frame."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, data.site_xmat[site_id])
    return quat


class DiffIK:
    """Damped-least-squares IK for one site over a subset of hinge joints."""

    def __init__(
        self, model: mujoco.MjModel, site: str, joints: tuple[str, ...], cfg: IKConfig | None = None
    ) -> None:
        self.model = model
        self.cfg = cfg or IKConfig()
        self.site_id = model.site(site).id
        joint_ids = [model.joint(name).id for name in joints]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self.dof_idx = np.array([model.jnt_dofadr[j] for j in joint_ids])
        self.low = model.jnt_range[joint_ids, 0].copy()
        self.high = model.jnt_range[joint_ids, 1].copy()
        self._scratch = mujoco.MjData(model)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def solve(
        self, qpos: np.ndarray, target_pos: np.ndarray, target_quat: np.ndarray
    ) -> np.ndarray:
        """Joint positions (n,) that put the site at the target pose, starting from ``qpos``.

        ``qpos`` is the full ``model.nq`` configuration; only the controlled joints change.
        The result stays within the joint ranges; if the target is out of reach it is the
        damped least-squares compromise closest to it.
        """
        cfg, data = self.cfg, self._scratch
        data.qpos[:] = qpos
        q = qpos[self.qpos_idx].copy()
        weights = np.array([1.0, 1.0, 1.0, cfg.rot_weight, cfg.rot_weight, cfg.rot_weight])
        for _ in range(cfg.iterations):
            data.qpos[self.qpos_idx] = q
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            err = np.concatenate(
                [
                    target_pos - data.site_xpos[self.site_id],
                    quat_error(target_quat, site_quat(data, self.site_id)),
                ]
            )
            err *= weights
            if np.linalg.norm(err) < cfg.tolerance:
                break
            mujoco.mj_jacSite(self.model, data, self._jacp, self._jacr, self.site_id)
            jac = np.vstack([self._jacp[:, self.dof_idx], self._jacr[:, self.dof_idx]])
            jac *= weights[:, None]
            lhs = jac @ jac.T + cfg.damping**2 * np.eye(6)
            dq = jac.T @ np.linalg.solve(lhs, err)
            step = np.max(np.abs(dq))
            if step > cfg.max_joint_step_rad:
                dq *= cfg.max_joint_step_rad / step
            q = np.clip(q + dq, self.low, self.high)
        return q
