"""A tiny sparse-reward task for tests and quick benchmarks: 2-D point-mass reaching.

``import learner.toy_env`` registers ``tandem/PointReach-v0``. Observation (4,) float32:
point position (x, y) in [-1, 1] and goal (x, y) in [-0.5, 0.5]. Action (2,) in [-1, 1]:
displacement of
``step_size`` per unit. Reward 1 and ``terminated`` when the point is within ``radius`` of the
goal; ``truncated`` after ``horizon`` steps. ``NoisyReachExpert`` is a scripted demonstrator.
``tandem/PointReachPixels-v0`` adds a top-down camera image (Dict observations).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "tandem/PointReach-v0"
PIXELS_ENV_ID = "tandem/PointReachPixels-v0"


class PointReachEnv(gym.Env[np.ndarray, np.ndarray]):
    """Reach a random goal from a random start; sparse 0/1 reward."""

    def __init__(self, horizon: int = 20, step_size: float = 0.1, radius: float = 0.1):
        self.horizon, self.step_size, self.radius = horizon, step_size, radius
        self.observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._pos = np.zeros(2)
        self._goal = np.zeros(2)
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._pos, self._goal]).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-1.0, 1.0, 2)
        self._goal = self.np_random.uniform(-0.5, 0.5, 2)
        self._t = 0
        return self._obs(), {"success": False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        self._pos = np.clip(self._pos + self.step_size * a, -1.0, 1.0)
        self._t += 1
        success = bool(np.linalg.norm(self._pos - self._goal) < self.radius)
        truncated = self._t >= self.horizon and not success
        return self._obs(), float(success), success, truncated, {"success": success}


class NoisyReachExpert:
    """Heads for the goal at ``speed`` (a fraction of full speed) with Gaussian action noise.

    The defaults make a slow, noisy demonstrator: its imitation often runs out of time on
    far goals, while an RL agent can learn to move at full speed.
    """

    def __init__(self, speed: float = 0.5, noise: float = 0.2, seed: int = 0):
        self.speed, self.noise = speed, noise
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        if isinstance(obs, dict):
            obs = obs["state"]
        delta = np.asarray(obs[2:4], np.float64) - np.asarray(obs[0:2], np.float64)
        distance = float(np.linalg.norm(delta))
        direction = delta / max(distance, 1e-6)
        action = direction * min(self.speed, distance / 0.1)
        return np.clip(action + self.rng.normal(0.0, self.noise, 2), -1, 1).astype(np.float32)


class PointReachPixelsEnv(PointReachEnv):
    """The same task with Dict observations: ``state`` (4,) and a ``top`` camera image
    uint8 (size, size, 3) that draws the point (red) and the goal (green)."""

    def __init__(self, size: int = 48, **kwargs: Any):
        super().__init__(**kwargs)
        self.size = size
        image = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {"state": self.observation_space, "top": image}
        )

    def _obs(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        image = np.zeros((self.size, self.size, 3), np.uint8)
        for xy, channel in ((self._pos, 0), (self._goal, 1)):
            r, c = ((np.asarray(xy)[::-1] + 1) / 2 * (self.size - 3)).astype(int)
            image[r : r + 3, c : c + 3, channel] = 255
        return {"state": super()._obs(), "top": image}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=PointReachEnv)  # type: ignore[arg-type]
if PIXELS_ENV_ID not in gym.registry:
    gym.register(PIXELS_ENV_ID, entry_point=PointReachPixelsEnv)
