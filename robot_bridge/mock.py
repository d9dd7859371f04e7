"""A deterministic kinematic fake arm with a reach task, for the layers above the backend.

The end effector moves exactly by the commanded delta; the task is to bring
it within ``SUCCESS_RADIUS_M`` of a goal (task features: the goal position).
Images are cheap synthetic pictures that change with the pose.
"""

from __future__ import annotations

import time

import numpy as np

from robot_bridge.driver import ArmDriver
from robot_bridge.types import PROPRIO_DIM, RobotState
from tandem.messages.arm import ArmSpec

HOME_POS = np.array([0.5, 0.0, 0.25])
HOME_QUAT = np.array([0.0, 1.0, 0.0, 0.0])  # w, x, y, z: gripper pointing down
DEFAULT_GOAL = np.array([0.55, 0.08, 0.15])
SUCCESS_RADIUS_M = 0.02
CONTROL_DT_S = 0.1
STATE_DIM = PROPRIO_DIM + 3


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions (w, x, y, z)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ])  # fmt: skip


def quat_from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = rotvec / angle
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


class MockDriver(ArmDriver):
    """Kinematic fake: pose integrates deltas exactly; gripper follows its command at once."""

    def __init__(
        self,
        *,
        image_size: int = 96,
        cameras: tuple[str, ...] = ("front", "wrist"),
        max_translation_m: float = 0.05,
        max_rotation_rad: float = 0.2,
        arm_timeout_s: float = 0.5,
    ) -> None:
        self._spec = ArmSpec(
            driver="mock", task="reach", state_dim=STATE_DIM,
            cameras={c: [image_size, image_size, 3] for c in cameras},
            max_translation_m=max_translation_m, max_rotation_rad=max_rotation_rad,
            arm_timeout_s=arm_timeout_s,
        )  # fmt: skip
        self._size = image_size
        self.connected = False
        self.stopped = False
        self.stop_calls = 0
        self._set_home(DEFAULT_GOAL)

    def _set_home(self, goal: np.ndarray) -> None:
        self.pos, self.quat, self.goal = HOME_POS.copy(), HOME_QUAT.copy(), goal
        self.opening = 1.0
        self.linvel, self.angvel = np.zeros(3), np.zeros(3)
        self.reward, self.success = 0.0, False

    @property
    def spec(self) -> ArmSpec:
        return self._spec

    def connect(self) -> None:
        self.connected = True

    def close(self) -> None:
        self.stop()
        self.connected = False

    def read_state(self, images: bool = True) -> RobotState:
        state = np.concatenate([
            self.pos, self.quat, [self.opening], self.linvel, self.angvel, self.goal,
        ]).astype(np.float32)  # fmt: skip
        return RobotState(
            state=state, ee_pos=self.pos.copy(), ee_quat=self.quat.copy(), gripper=self.opening,
            t=time.monotonic(), reward=self.reward, success=self.success,
            images=self._render() if images else {}, stopped=self.stopped,
        )  # fmt: skip

    def move_ee(self, delta_pos: np.ndarray, delta_rot: np.ndarray) -> None:
        self.stopped = False
        self.pos = self.pos + np.asarray(delta_pos, dtype=np.float64)
        self.quat = quat_mul(quat_from_rotvec(np.asarray(delta_rot, dtype=np.float64)), self.quat)
        self.quat /= np.linalg.norm(self.quat)
        self.linvel = np.asarray(delta_pos) / CONTROL_DT_S
        self.angvel = np.asarray(delta_rot) / CONTROL_DT_S
        self.success = bool(np.linalg.norm(self.pos - self.goal) < SUCCESS_RADIUS_M)
        self.reward = float(self.success)

    def set_gripper(self, command: float) -> None:
        self.opening = float(np.clip((1.0 - command) / 2.0, 0.0, 1.0))

    def home(self, randomize: bool = False, seed: int | None = None) -> None:
        goal = DEFAULT_GOAL.copy()
        if randomize:
            rng = np.random.default_rng(seed)
            goal = goal + rng.uniform([-0.1, -0.1, -0.05], [0.1, 0.1, 0.05])
        self._set_home(goal)
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        self.stop_calls += 1
        self.linvel, self.angvel = np.zeros(3), np.zeros(3)

    def _render(self) -> dict[str, np.ndarray]:
        """A grey picture with a coloured square at the ee (front: x-y, wrist: y-z)."""
        out = {}
        for name in self._spec.cameras:
            img = np.full((self._size, self._size, 3), 60, dtype=np.uint8)
            img[..., 2] = np.uint8(int(255 * self.opening))
            u, v = (self.pos[0], self.pos[1]) if name == "front" else (self.pos[1], self.pos[2])
            r = int(np.clip((u - 0.2) / 0.7, 0, 1) * (self._size - 8))
            c = int(np.clip((v + 0.4) / 0.8, 0, 1) * (self._size - 8))
            img[r : r + 8, c : c + 8] = (250, 200, 40)
            out[name] = img
        return out


def mock_expert(max_translation_m: float = 0.05):
    """Scripted expert of the mock reach task: head straight for the goal, gripper open."""

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(obs["state"], dtype=np.float64)
        delta = (state[PROPRIO_DIM : PROPRIO_DIM + 3] - state[:3]) / max_translation_m
        action = np.zeros(7)
        action[:3] = np.clip(delta, -1.0, 1.0)
        action[6] = -1.0
        return action

    return act
