"""An ``ArmDriver`` over the MuJoCo tasks of ``sim`` (Gymnasium environments)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from robot_bridge.driver import ArmDriver, DriverError
from robot_bridge.types import RobotState
from tandem.messages.arm import ArmSpec


class SimDriver(ArmDriver):
    """Drives ``sim.make_env(task)``; ``move_ee`` is one environment step.

    The environment takes normalised actions; this driver divides the physical
    deltas by the per-step limits it created the environment with.
    """

    def __init__(
        self,
        task: str,
        *,
        image_size: int = 96,
        cameras: tuple[str, ...] = ("front", "wrist"),
        horizon: int = 200,
        max_translation_m: float = 0.05,
        max_rotation_rad: float = 0.2,
        arm_timeout_s: float = 0.5,
    ) -> None:
        import sim  # MuJoCo is imported only when a sim is asked for

        if task not in sim.TASKS:
            raise DriverError(f"unknown sim task {task!r}; known: {list(sim.TASKS)}")
        self._sim = sim
        self._task = task
        self._env_kwargs: dict[str, Any] = dict(
            image_size=image_size, cameras=tuple(cameras), horizon=horizon,
            max_translation_m=max_translation_m, max_rotation_rad=max_rotation_rad,
        )  # fmt: skip
        # A simulation has no link to open: the environment is built here so that
        # the spec (state size) is known before connect.
        self._env: Any = sim.make_env(task, **self._env_kwargs)
        spaces: Any = self._env.observation_space  # a gymnasium Dict space
        self._spec = ArmSpec(
            driver=f"sim:{task}", task=task, state_dim=int(spaces["state"].shape[0]),
            cameras={c: [image_size, image_size, 3] for c in cameras},
            max_translation_m=max_translation_m, max_rotation_rad=max_rotation_rad,
            arm_timeout_s=arm_timeout_s,
        )  # fmt: skip
        self._connected = False
        self._obs: dict[str, np.ndarray] = {}
        self._reward, self._success, self._stopped = 0.0, False, False
        self._gripper = -1.0

    @property
    def spec(self) -> ArmSpec:
        return self._spec

    def connect(self) -> None:
        if self._env is None:
            self._env = self._sim.make_env(self._task, **self._env_kwargs)
        if not self._connected:
            self._connected = True
            self.home()

    def close(self) -> None:
        self._connected = False
        if self._env is not None:
            self._env.close()
            self._env = None

    def _require(self) -> Any:
        if not self._connected or self._env is None:
            raise DriverError("sim driver is not connected")
        return self._env

    def read_state(self, images: bool = True) -> RobotState:
        self._require()
        state = np.asarray(self._obs["state"], dtype=np.float32)
        cams = {c: self._obs[c] for c in self._spec.cameras} if images else {}
        return RobotState(
            state=state, ee_pos=state[:3].astype(np.float64), ee_quat=state[3:7].astype(np.float64),
            gripper=float(state[7]), t=time.monotonic(), reward=self._reward,
            success=self._success, images=cams, stopped=self._stopped,
        )  # fmt: skip

    def move_ee(self, delta_pos: np.ndarray, delta_rot: np.ndarray) -> None:
        env = self._require()
        action = np.concatenate([
            np.asarray(delta_pos) / self._spec.max_translation_m,
            np.asarray(delta_rot) / self._spec.max_rotation_rad,
            [self._gripper],
        ])  # fmt: skip
        action = np.clip(action, -1.0, 1.0).astype(np.float32)
        self._obs, reward, _terminated, _truncated, info = env.step(action)
        self._reward = float(reward)
        self._success = bool(info.get("success", info.get("is_success", False)))
        self._stopped = False

    def set_gripper(self, command: float) -> None:
        self._gripper = float(np.clip(command, -1.0, 1.0))

    def home(self, randomize: bool = False, seed: int | None = None) -> None:
        env = self._require()
        self._obs, _info = env.reset(seed=seed, options={"randomize": randomize})
        self._reward, self._success, self._stopped = 0.0, False, False
        self._gripper = -1.0

    def stop(self) -> None:
        # The simulation only advances in move_ee, so stopping is holding still.
        self._stopped = True

    def expert(self) -> Any:
        """The task's scripted expert (a callable obs dict -> action (7,))."""
        return self._sim.expert_for(self._task)
