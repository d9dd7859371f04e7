"""Scripted experts: observation -> action (7,) float32 in [-1, 1] for each task.

They read only ``obs["state"]`` (proprioception and the task's object features, see
``robot_bridge.sim.tasks``) and choose their phase from it, so they are deterministic functions
of the observation and need no episode bookkeeping. They assume the default per-step limits
(0.05 m, 0.2 rad); with other limits they remain proportional controllers, only with other
gains.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robot_bridge.sim import scene
from robot_bridge.sim.rotations import quat_mul, rotation_between, wrap, yaw_of, yaw_quat

Obs = dict[str, np.ndarray]
STEP_M = 0.05  # the default max_translation_m: an error of this size saturates the action
STEP_RAD = 0.2  # the default max_rotation_rad
OPEN, CLOSE = -1.0, 1.0
HOVER_M = 0.08  # approach height above the grasp point
ALIGN_M = 0.01  # xy error under which the gripper descends
GRASP_TOL_M = 0.012  # distance from the grasp point under which the jaws close


def _action(ee_pos: np.ndarray, ee_quat: np.ndarray, goal_pos: np.ndarray, goal_yaw: float,
            gripper: float) -> np.ndarray:  # fmt: skip
    """Proportional step towards ``goal_pos`` with the gripper pointing down at ``goal_yaw``."""
    goal_quat = quat_mul(yaw_quat(goal_yaw), np.asarray(scene.HOME_QUAT))
    rot = rotation_between(goal_quat, ee_quat)
    act = np.concatenate([(goal_pos - ee_pos) / STEP_M, rot / STEP_RAD, [gripper]])
    return np.clip(act, -1.0, 1.0).astype(np.float32)


def _split(obs: Obs) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    state = np.asarray(obs["state"], dtype=np.float64)
    return state[0:3], state[3:7], float(state[7]), state[14:]


def _reach_and_grasp(ee: np.ndarray, quat: np.ndarray, opening: float, grasp: np.ndarray,
                     yaw: float, held_opening: tuple[float, float]) -> tuple[str, np.ndarray]:  # fmt: skip
    """Common phases: hover above ``grasp``, descend, close. Returns (phase, action)."""
    dist = float(np.linalg.norm(grasp - ee))
    lo, hi = held_opening
    if dist < 2.5 * GRASP_TOL_M and lo < opening < hi:
        return "holding", np.zeros(7, np.float32)
    if dist < GRASP_TOL_M:
        # closed on nothing: open again and retry; otherwise close on the object
        grip = OPEN if opening <= lo else CLOSE
        return "closing", _action(ee, quat, grasp, yaw, grip)
    yaw_ok = abs(wrap(yaw - yaw_of(quat))) < 0.08
    if np.linalg.norm(grasp[:2] - ee[:2]) < ALIGN_M and yaw_ok:
        return "descending", _action(ee, quat, grasp, yaw, OPEN)
    hover = grasp + np.array([0.0, 0.0, HOVER_M])
    hover[2] = max(hover[2], ee[2]) if np.linalg.norm(grasp[:2] - ee[:2]) > 0.03 else hover[2]
    return "approaching", _action(ee, quat, hover, yaw, OPEN)


class LiftExpert:
    """Hover over the cube with the jaws square to its faces, descend, close, lift."""

    def __call__(self, obs: Obs) -> np.ndarray:
        ee, quat, opening, feat = _split(obs)
        cube, cube_quat = feat[0:3], feat[3:7]
        ee_yaw = yaw_of(quat)
        yaw = ee_yaw + wrap(yaw_of(cube_quat) - ee_yaw, np.pi / 2)
        held = (0.5 * scene.CUBE_HALF_M / scene.FINGER_MAX_M, 1.2 * scene.CUBE_HALF_M / scene.FINGER_MAX_M)
        phase, act = _reach_and_grasp(ee, quat, opening, cube, yaw, held)
        if phase == "holding":
            goal = np.array([ee[0], ee[1], cube[2] + 0.15])
            act = _action(ee, quat, goal, yaw, CLOSE)
        return act

    def reset(self) -> None:
        """Nothing to forget: the phase is recomputed from every observation."""


class DrawerExpert:
    """Hover over the handle with the jaws across the bar, descend, close, pull."""

    def __call__(self, obs: Obs) -> np.ndarray:
        ee, quat, opening, feat = _split(obs)
        handle = feat[0:3]
        ee_yaw = yaw_of(quat)
        yaw = ee_yaw + wrap(0.0 - ee_yaw, np.pi)  # jaws open along x, across the bar
        held = (0.3 * 0.01 / scene.FINGER_MAX_M, 1.6 * 0.01 / scene.FINGER_MAX_M)
        phase, act = _reach_and_grasp(ee, quat, opening, handle, yaw, held)
        if phase == "holding":
            goal = handle + np.array([-STEP_M, 0.0, 0.0])
            act = _action(ee, quat, goal, yaw, CLOSE)
        return act

    def reset(self) -> None:
        """Nothing to forget: the phase is recomputed from every observation."""


def expert_for(task: str) -> Callable[[Obs], np.ndarray]:
    """A new scripted expert for ``task``: obs -> action (7,) float32 in [-1, 1]."""
    if task == "lift":
        return LiftExpert()
    if task == "drawer":
        return DrawerExpert()
    raise ValueError(f"unknown task {task!r}; expected 'lift' or 'drawer'")
