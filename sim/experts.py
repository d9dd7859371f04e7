"""Scripted experts: observation -> action (7,) float32 in [-1, 1] for each task.

They read only ``obs["state"]`` (proprioception and the task's object features, see
``sim.tasks``) and work out their phase (approach, descend, close, then lift or
pull) from it on every call, so they are deterministic functions of the observation: nothing
carries over between calls, and a fresh episode needs no reset. They assume the default
per-step limits (0.05 m, 0.2 rad); with other limits they remain proportional controllers,
only with other gains.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim import scene
from sim.rotations import quat_mul, rotation_between, wrap, yaw_of, yaw_quat

Obs = dict[str, np.ndarray]
STEP_M = 0.05  # the default max_translation_m: an error of this size saturates the action
STEP_RAD = 0.2  # the default max_rotation_rad
OPEN, CLOSE = -1.0, 1.0
HOVER_M = 0.08  # approach height above the grasp point
ALIGN_M = 0.01  # xy error under which the gripper descends
ALIGN_RAD = 0.08  # yaw error under which the gripper descends
GRASP_TOL_M = 0.012  # distance from the grasp point under which the jaws close
HANDLE_RADIUS_M = 0.01


@dataclass(frozen=True)
class Proprio:
    """The proprioceptive part of the state that the experts use (world frame)."""

    pos: np.ndarray  # (3,) grip-site position, metres
    quat: np.ndarray  # (4,) wxyz
    opening: float  # 0 closed .. 1 open

    @classmethod
    def from_obs(cls, obs: Obs) -> tuple[Proprio, np.ndarray]:
        """Split ``obs["state"]`` into proprioception and the task features."""
        state = np.asarray(obs["state"], dtype=np.float64)
        return cls(state[0:3], state[3:7], float(state[7])), state[14:]


def move(ee: Proprio, goal: np.ndarray, yaw: float, gripper: float) -> np.ndarray:
    """Proportional step towards ``goal`` (3,) with the gripper pointing down at heading ``yaw``.

    The heading turns the way that does not cross +-pi, even when that is the long way
    round: headings near +-pi put the wrist against its joint limits (a policy can wind
    it up there), and turning further would never reach the goal.
    """
    goal_quat = quat_mul(yaw_quat(yaw), np.asarray(scene.HOME_QUAT))
    rot = rotation_between(goal_quat, ee.quat)
    turn = yaw - yaw_of(ee.quat)  # both within [-pi, pi]
    if abs(turn) > np.pi:
        rot[2] = turn
    act = np.concatenate([(goal - ee.pos) / STEP_M, rot / STEP_RAD, [gripper]])
    return np.clip(act, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Grasp:
    """Where and how to grasp: point (3,), jaw heading (rad), opening range that means held."""

    point: np.ndarray
    yaw: float
    held_opening: tuple[float, float]

    def holding(self, ee: Proprio) -> bool:
        """Jaws closed on something at the grasp point."""
        low, high = self.held_opening
        near = np.linalg.norm(self.point - ee.pos) < 2.5 * GRASP_TOL_M
        return bool(near and low < ee.opening < high)

    def reach(self, ee: Proprio) -> np.ndarray:
        """Action of the phases before holding: hover above the point, descend, close."""
        offset = self.point - ee.pos
        if np.linalg.norm(offset) < GRASP_TOL_M:
            # closed on nothing: open again and retry; otherwise close on the object
            grip = OPEN if ee.opening <= self.held_opening[0] else CLOSE
            return move(ee, self.point, self.yaw, grip)
        xy_error = float(np.linalg.norm(offset[:2]))
        yaw_ok = abs(wrap(self.yaw - yaw_of(ee.quat))) < ALIGN_RAD
        if xy_error < ALIGN_M and yaw_ok:
            return move(ee, self.point, self.yaw, OPEN)
        hover = self.point + np.array([0.0, 0.0, HOVER_M])
        if xy_error > 3 * ALIGN_M:
            hover[2] = max(hover[2], ee.pos[2])  # never move down while far off in xy
        return move(ee, hover, self.yaw, OPEN)


class LiftExpert:
    """Hover over the cube with the jaws square to its faces, descend, close, lift."""

    def __call__(self, obs: Obs) -> np.ndarray:
        ee, feat = Proprio.from_obs(obs)
        cube, cube_quat = feat[0:3], feat[3:7]
        yaw = wrap(yaw_of(cube_quat), np.pi / 2)  # the face pair nearest the home heading
        width = scene.CUBE_HALF_M / scene.FINGER_MAX_M
        grasp = Grasp(cube, yaw, (0.5 * width, 1.2 * width))
        if grasp.holding(ee):
            return move(ee, np.array([ee.pos[0], ee.pos[1], cube[2] + 0.15]), yaw, CLOSE)
        return grasp.reach(ee)

    def reset(self) -> None:
        """Nothing to forget: the phase is recomputed from every observation."""


class DrawerExpert:
    """Hover over the handle with the jaws across the bar, descend, close, pull."""

    def __call__(self, obs: Obs) -> np.ndarray:
        ee, feat = Proprio.from_obs(obs)
        handle = feat[0:3]
        yaw = 0.0  # the home heading: jaws open along world x, across the bar
        width = HANDLE_RADIUS_M / scene.FINGER_MAX_M
        grasp = Grasp(handle, yaw, (0.3 * width, 1.6 * width))
        if grasp.holding(ee):
            return move(ee, handle + np.array([-STEP_M, 0.0, 0.0]), yaw, CLOSE)
        return grasp.reach(ee)

    def reset(self) -> None:
        """Nothing to forget: the phase is recomputed from every observation."""


PASS_Y_M = 0.15  # detour: lateral offset from the post's centre line when passing it
PASS_Z_M = 0.10  # detour: grip height while passing
PAST_X_M = 0.09  # detour: x beyond the post's centre from which the way to the goal is clear
GOAL_Z_M = 0.04


class DetourExpert:
    """Go around the post, on the left (+y), on the right (-y), or either (``random``).

    Aside: diagonally down and sideways to beside the post (sideways fast enough to clear
    the post's top before the jaws get down to it); along: forward past the post; then
    over to the goal and down. A ``left`` or ``right`` expert is a deterministic function of
    the observation. A ``random`` one tosses a fair coin per episode: a hash of the exact
    bytes of the post and goal positions (which stay put through an episode) and ``seed``.
    So it stays a deterministic function of the observation, yet no smooth function of the
    state predicts it: the two ways are equally likely, and nothing a policy can learn from
    the observation tells which one an episode takes.
    """

    def __init__(self, side: str = "random", seed: int = 0) -> None:
        if side not in ("left", "right", "random"):
            raise ValueError(f"side must be 'left', 'right' or 'random', got {side!r}")
        self.side = side
        self.seed = int(seed)

    def __call__(self, obs: Obs) -> np.ndarray:
        ee, feat = Proprio.from_obs(obs)
        post, goal = feat[0:3], feat[3:6]
        if ee.pos[0] > post[0] + PAST_X_M:
            target = goal + np.array([0.0, 0.0, GOAL_Z_M])
            if np.linalg.norm(ee.pos[:2] - goal[:2]) > 0.02:
                target[2] = max(target[2], min(ee.pos[2], PASS_Z_M))
            return move(ee, target, 0.0, OPEN)
        side = self._sign(obs)
        beside_y = post[1] + side * PASS_Y_M
        if abs(ee.pos[1] - beside_y) > 0.03 or ee.pos[2] > PASS_Z_M + 0.03:
            aside = np.array([post[0] - 0.02, beside_y, PASS_Z_M])
            return move(ee, aside, 0.0, OPEN)
        along = np.array([post[0] + PAST_X_M + 0.03, beside_y, PASS_Z_M])
        return move(ee, along, 0.0, OPEN)

    def _sign(self, obs: Obs) -> float:
        """+1 = left (+y), -1 = right."""
        if self.side != "random":
            return 1.0 if self.side == "left" else -1.0
        scene_part = np.asarray(obs["state"], dtype=np.float32)[14:20]  # post, goal
        coin = zlib.crc32(np.ascontiguousarray(scene_part).tobytes(), self.seed) & 1
        return 1.0 if coin else -1.0

    def reset(self) -> None:
        """Nothing to forget: the way is read from every observation."""


def expert_for(task: str, side: str = "random") -> Callable[[Obs], np.ndarray]:
    """A new scripted expert for ``task``: obs -> action (7,) float32 in [-1, 1].

    ``side`` is the detour expert's way round the post (left, right or random); the other
    tasks have one expert.
    """
    if task == "lift":
        return LiftExpert()
    if task == "drawer":
        return DrawerExpert()
    if task == "detour":
        return DetourExpert(side)
    raise ValueError(f"unknown task {task!r}; expected 'lift', 'drawer' or 'detour'")
