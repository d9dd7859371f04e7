"""A tiny sparse-reward task for tests and quick benchmarks: 2-D point-mass reaching.

``import learner.toy_env`` registers ``tandem/PointReach-v0``. Observation (4,) float32:
point position (x, y) in [-1, 1] and goal (x, y) in [-0.5, 0.5]. Action (2,) in [-1, 1]:
displacement of
``step_size`` per unit. Reward 1 and ``terminated`` when the point is within ``radius`` of the
goal; ``truncated`` after ``horizon`` steps. ``NoisyReachExpert`` is a scripted demonstrator.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "tandem/PointReach-v0"


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

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        delta = np.asarray(obs[2:4], np.float64) - np.asarray(obs[0:2], np.float64)
        direction = delta / max(np.linalg.norm(delta), 1e-6)
        action = direction * min(self.speed, np.linalg.norm(delta) / 0.1)
        return np.clip(action + self.rng.normal(0.0, self.noise, 2), -1, 1).astype(np.float32)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=PointReachEnv)
