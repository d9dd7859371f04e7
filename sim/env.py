"""Gymnasium environment of the simulated tabletop tasks (see docs/sim.md).

Frames and units: positions in metres and orientations as quaternions wxyz, all in the world
frame, which is the robot base frame (x forward over the table, y left, z up, table top z = 0).
Each ``step`` lasts ``CONTROL_DT`` = 0.1 s of simulated time (10 Hz control).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from sim import scene
from sim.control import DiffIK, IKConfig, site_quat
from sim.rotations import quat_mul, rotation_between, rotvec_to_quat
from sim.tasks import TASK_CLASSES

log = logging.getLogger(__name__)

CAMERA_NAMES: tuple[str, ...] = ("front", "wrist")
PROPRIO_NAMES: tuple[str, ...] = (
    "ee_x", "ee_y", "ee_z", "ee_qw", "ee_qx", "ee_qy", "ee_qz", "gripper_opening",
    "ee_vx", "ee_vy", "ee_vz", "ee_wx", "ee_wy", "ee_wz",
)  # fmt: skip
PROPRIO_DIM = len(PROPRIO_NAMES)
ACTION_DIM = 7
CONTROL_DT = 0.1
RAMP_FRACTION = 0.6  # joint targets are interpolated over this part of a control step
HOME_JOINT_NOISE_RAD = 0.05
WORKSPACE_LOW = np.array([0.15, -0.45, 0.02])  # limits of the commanded grip-site position
WORKSPACE_HIGH = np.array([0.85, 0.45, 0.6])
SHOULDER_POS = np.array([0.0, 0.0, 0.18])
MAX_WRIST_REACH_M = 0.67  # upper arm + forearm are 0.70 m; keep clear of the straight arm
TARGET_STICK_M = 0.015
TARGET_STICK_RAD = 0.08


class TabletopEnv(gymnasium.Env):
    """Jointed 6-DoF arm with a parallel-jaw gripper on a table, controlled in end-effector space.

    Action (7,) in [-1, 1] (values outside are clipped): end-effector translation delta (x, y, z)
    times ``max_translation_m``, rotation delta as a rotation vector (world/base frame) times
    ``max_rotation_rad``, then the gripper command (-1 open .. +1 closed, absolute).

    Observation: ``state`` float32 (PROPRIO_DIM + task features,) = grip-site position (3),
    orientation wxyz (4, sign in the hemisphere of the home orientation), gripper opening (1,
    0 closed .. 1 open), linear velocity (3, m/s), angular velocity (3, rad/s), task features;
    plus one uint8 (H, W, 3) image per camera name.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        task: str,
        *,
        image_size: int = 96,
        cameras: Sequence[str] = CAMERA_NAMES,
        horizon: int = 200,
        max_translation_m: float = 0.05,
        max_rotation_rad: float = 0.2,
        render_mode: str | None = None,
    ) -> None:
        _check_args(
            task,
            image_size=image_size,
            cameras=cameras,
            horizon=horizon,
            max_translation_m=max_translation_m,
            max_rotation_rad=max_rotation_rad,
        )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = task
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)
        self.horizon = int(horizon)
        self.max_translation_m = float(max_translation_m)
        self.max_rotation_rad = float(max_rotation_rad)
        self.render_mode = render_mode
        self.model = mujoco.MjModel.from_xml_string(scene.scene_xml(task, self.image_size))
        self.data = mujoco.MjData(self.model)
        self._task = TASK_CLASSES[task](self.model)
        self._ik = DiffIK(self.model, "grip", scene.ARM_JOINTS, IKConfig())
        self._site = self.model.site("grip").id
        self._arm_act = np.array([self.model.actuator(j).id for j in scene.ARM_JOINTS])
        self._finger_act = np.array([self.model.actuator(j).id for j in scene.FINGER_JOINTS])
        self._finger_qpos = np.array([self.model.joint(j).qposadr[0] for j in scene.FINGER_JOINTS])
        self.n_substeps = round(CONTROL_DT / self.model.opt.timestep)
        kp = self.model.actuator_gainprm[self._arm_act, 0]
        kv = -self.model.actuator_biasprm[self._arm_act, 2]
        self._servo_lag_s = (kv + self.model.dof_damping[self._ik.dof_idx]) / kp
        self.home_qpos = self._solve_home()
        self.proprio_dim = PROPRIO_DIM
        self.state_names: tuple[str, ...] = PROPRIO_NAMES + self._task.feature_names
        self.state_dim = len(self.state_names)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        obs_spaces: dict[str, spaces.Space[Any]] = {
            "state": spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32)
        }
        for cam in self.cameras:
            obs_spaces[cam] = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self._renderer: mujoco.Renderer | None = None
        self._steps = 0
        self._target: tuple[np.ndarray, np.ndarray] | None = None
        self.reset(seed=0)

    # ----------------------------------------------------------------- gymnasium interface
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Home pose (with small joint noise) and a new object placement.

        ``options={"randomize": False}`` gives the exact home pose and nominal object pose.
        """
        super().reset(seed=seed)
        randomize = bool((options or {}).get("randomize", True))
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        qpos_idx = self._ik.qpos_idx
        data.qpos[qpos_idx] = self.home_qpos
        if randomize:
            scale = HOME_JOINT_NOISE_RAD * self._task.home_noise
            noise = self.np_random.uniform(-1, 1, len(qpos_idx)) * scale
            data.qpos[qpos_idx] = np.clip(self.home_qpos + noise, self._ik.low, self._ik.high)
        data.qpos[self._finger_qpos] = scene.FINGER_MAX_M
        data.ctrl[self._arm_act] = data.qpos[qpos_idx]
        data.ctrl[self._finger_act] = scene.FINGER_MAX_M
        self._task.reset(model, data, self.np_random, randomize)
        mujoco.mj_forward(model, data)
        self._steps = 0
        self._target = None
        return self._observation(), self._info(False)

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply one 0.1 s end-effector command. Raises ValueError on a malformed action."""
        act = validate_action(action)
        pos, quat = self._command_base()
        target_quat = quat_mul(rotvec_to_quat(act[3:6] * self.max_rotation_rad), quat)
        target_quat /= np.linalg.norm(target_quat)
        target_pos = self._reachable(pos + act[:3] * self.max_translation_m, target_quat)
        self._target = (target_pos, target_quat)
        q_goal = self._ik.solve(self.data.qpos, target_pos, target_quat)
        finger_goal = scene.FINGER_MAX_M * (1.0 - act[6]) / 2.0
        self._advance(q_goal, finger_goal)
        self._steps += 1
        success = self._task.success(self.model, self.data)
        truncated = self._steps >= self.horizon and not success
        return self._observation(), float(success), success, truncated, self._info(success)

    def render(self) -> np.ndarray | None:
        """The ``front`` camera image (H, W, 3) uint8 when render_mode is "rgb_array"."""
        if self.render_mode != "rgb_array":
            return None
        return self._render("front")

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ----------------------------------------------------------------- extra interface
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Grip-site position (3,) in metres and orientation wxyz (4,), world = base frame."""
        quat = site_quat(self.data, self._site)
        if np.dot(quat, scene.HOME_QUAT) < 0:
            quat = -quat
        return self.data.site_xpos[self._site].copy(), quat

    def gripper_opening(self) -> float:
        """Jaw gap as a fraction of the widest gap: 0 closed, 1 fully open."""
        gap = float(np.mean(self.data.qpos[self._finger_qpos]))
        return float(np.clip(gap / scene.FINGER_MAX_M, 0.0, 1.0))

    def render_cameras(self) -> dict[str, np.ndarray]:
        """One fresh (H, W, 3) uint8 image per configured camera."""
        return {cam: self._render(cam) for cam in self.cameras}

    # ----------------------------------------------------------------- internals
    def _advance(self, q_goal: np.ndarray, finger_goal: float) -> None:
        """Run the physics substeps of one control step, ramping the joint targets."""
        model, data = self.model, self.data
        q_start = data.qpos[self._ik.qpos_idx].copy()
        ramp_steps = max(1, round(RAMP_FRACTION * self.n_substeps))
        # Velocity feed-forward: a position servo with damping lags a moving reference by
        # (kv + joint damping) / kp times its velocity; shifting the reference cancels that.
        qdot_ref = (q_goal - q_start) / (ramp_steps * model.opt.timestep)
        lead = qdot_ref * self._servo_lag_s
        data.ctrl[self._finger_act] = finger_goal
        for i in range(self.n_substeps):
            alpha = min(1.0, (i + 1) / ramp_steps)
            ctrl = q_start + alpha * (q_goal - q_start)
            if i + 1 < ramp_steps:
                ctrl = ctrl + lead
            data.ctrl[self._arm_act] = ctrl
            mujoco.mj_step(model, data)

    def _command_base(self) -> tuple[np.ndarray, np.ndarray]:
        """Pose that this step's delta is applied to: the last target while the arm tracks it.

        Using the last target keeps small tracking errors from accumulating into drift; when the
        arm is far from it (blocked by contact, out of reach) the measured pose is used, so
        targets never wind up away from the arm.
        """
        pos, quat = self.ee_pose()
        if self._target is None:
            return pos, quat
        target_pos, target_quat = self._target
        close_pos = np.linalg.norm(target_pos - pos) <= TARGET_STICK_M
        close_rot = np.linalg.norm(rotation_between(target_quat, quat)) <= TARGET_STICK_RAD
        if close_pos and close_rot:
            return target_pos, target_quat
        return pos, quat

    def _reachable(self, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """Clip a grip-site target to the workspace box and to the arm's reach.

        The wrist centre (where it would be with the target orientation ``quat``) must stay
        within MAX_WRIST_REACH_M of the shoulder, clear of the stretched-arm singularity.
        """
        pos = np.clip(pos, WORKSPACE_LOW, WORKSPACE_HIGH)
        tool_axis = np.empty(9)
        mujoco.mju_quat2Mat(tool_axis, quat)
        wrist = pos - tool_axis.reshape(3, 3)[:, 2] * scene.WRIST_TO_GRIP_M
        offset = wrist - SHOULDER_POS
        dist = float(np.linalg.norm(offset))
        if dist > MAX_WRIST_REACH_M:
            pos = pos - offset * (1.0 - MAX_WRIST_REACH_M / dist)
        return pos

    def _observation(self) -> dict[str, np.ndarray]:
        pos, quat = self.ee_pose()
        vel = np.empty(6)
        mujoco.mj_objectVelocity(
            self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self._site, vel, 0
        )
        state = np.concatenate(
            [
                pos,
                quat,
                [self.gripper_opening()],
                vel[3:],
                vel[:3],
                self._task.features(self.model, self.data),
            ]
        ).astype(np.float32)
        obs = {"state": state}
        obs.update(self.render_cameras())
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        pos, quat = self.ee_pose()
        return {
            "success": success,
            "is_success": success,
            "ee_pos": pos,
            "ee_quat": quat,
            "gripper": self.gripper_opening(),
        }

    def _render(self, camera: str) -> np.ndarray:
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, self.image_size, self.image_size)
            except mujoco.FatalError as exc:
                raise RuntimeError(
                    f"offscreen rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}; "
                    "set MUJOCO_GL=egl (or osmesa) before mujoco is first imported, or use "
                    "cameras=() for a state-only environment"
                ) from exc
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render().copy()

    def _solve_home(self) -> np.ndarray:
        """Joint angles (6,) that put the grip site at HOME_POS pointing down."""
        qpos = self.data.qpos.copy()
        qpos[self._ik.qpos_idx] = scene.HOME_GUESS
        ik = DiffIK(self.model, "grip", scene.ARM_JOINTS, IKConfig(iterations=200, tolerance=1e-9))
        home = ik.solve(qpos, np.array(scene.HOME_POS), np.array(scene.HOME_QUAT))
        check = mujoco.MjData(self.model)
        check.qpos[self._ik.qpos_idx] = home
        mujoco.mj_kinematics(self.model, check)
        error = np.linalg.norm(check.site_xpos[self._site] - scene.HOME_POS)
        if error > 1e-4:
            raise RuntimeError(f"home pose IK did not converge (error {error:.2e} m)")
        log.debug("%s env: home joints %s", self.task, np.round(home, 4).tolist())
        return home


def validate_action(action: Any) -> np.ndarray:
    """The action as float64 (7,) clipped to [-1, 1]; ValueError if malformed or non-finite."""
    try:
        act = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action must be {ACTION_DIM} numbers, got {action!r}") from exc
    if act.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape ({ACTION_DIM},), got {act.shape}")
    if not np.all(np.isfinite(act)):
        raise ValueError(f"action must be finite, got {act.tolist()}")
    return np.clip(act, -1.0, 1.0)


def _check_args(
    task: str,
    *,
    image_size: int,
    cameras: Sequence[str],
    horizon: int,
    max_translation_m: float,
    max_rotation_rad: float,
) -> None:
    if task not in TASK_CLASSES:
        raise ValueError(f"unknown task {task!r}; expected one of {tuple(TASK_CLASSES)}")
    if isinstance(cameras, str):
        raise ValueError(f"cameras must be a sequence of names, got the string {cameras!r}")
    unknown = [cam for cam in cameras if cam not in CAMERA_NAMES]
    if unknown or len(set(cameras)) != len(cameras):
        raise ValueError(f"cameras must be distinct names from {CAMERA_NAMES}, got {cameras!r}")
    if not 16 <= image_size <= 1024:
        raise ValueError(f"image_size must be in [16, 1024], got {image_size}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if not (max_translation_m > 0 and max_rotation_rad > 0):
        raise ValueError("max_translation_m and max_rotation_rad must be positive")
