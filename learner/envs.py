"""Environments for ``tandem train`` / ``record-demos``: ``gym:ID`` or ``sim:lift``/``sim:drawer``.

Every env is wrapped so that observations are canonical dicts (``"state"`` float32 [S] and
uint8 [H, W, 3] images per camera, see ``learner.obs``) and actions live in [-1, 1].
Success comes from ``info["success"]`` or ``info["is_success"]``, else from reward > 0.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

SIM_TASKS = ("lift", "drawer", "detour")


class EnvSpecError(ValueError):
    """The ENV string, its kwargs or the environment's spaces are not usable."""


@dataclass(frozen=True)
class EnvSpec:
    """Parsed ``ENV``: kind ``gym`` or ``sim``, an id and constructor kwargs."""

    kind: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    imports: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def parse_env(
    text: str, kwargs: str | dict[str, Any] | None = None, imports: Sequence[str] = ()
) -> EnvSpec:
    """``gym:ID`` or ``sim:TASK``; ``kwargs`` a JSON object (string or dict)."""
    kind, sep, name = text.partition(":")
    if not sep or not name or kind not in ("gym", "sim"):
        raise EnvSpecError(f"ENV must be gym:ID or sim:lift|sim:drawer, got {text!r}")
    if kind == "sim" and name not in SIM_TASKS:
        raise EnvSpecError(f"unknown sim task {name!r}; expected one of {SIM_TASKS}")
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except json.JSONDecodeError as exc:
            raise EnvSpecError(f"--env-kwargs is not valid JSON: {exc}") from None
    if kwargs is not None and not isinstance(kwargs, dict):
        raise EnvSpecError("--env-kwargs must be a JSON object")
    return EnvSpec(kind, name, dict(kwargs or {}), tuple(imports))


def make_env(
    spec: EnvSpec,
    *,
    cameras: Sequence[str] | None = None,
    image_size: int = 96,
    time_limit: int | None = None,
) -> CanonicalEnv:
    """Build the env. For sim tasks ``cameras`` picks the rendered cameras (None = all,
    () = state only); gym envs keep the observation they have. ``time_limit`` truncates
    episodes after that many steps (the sim's ``horizon``; a ``TimeLimit`` for gym envs);
    an explicit ``horizon`` in the env kwargs wins."""
    for module in spec.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EnvSpecError(f"--import {module}: {exc}") from None
    if spec.kind == "sim":
        env = _make_sim(spec, cameras, image_size, time_limit)
    else:
        try:
            env = gym.make(spec.name, **spec.kwargs)
        except (gym.error.Error, TypeError) as exc:
            raise EnvSpecError(f"cannot make gym env {spec.name!r}: {exc}") from None
        if time_limit is not None:
            env = gym.wrappers.TimeLimit(env, time_limit)
    return CanonicalEnv(env, cameras if spec.kind == "gym" else None)


def _make_sim(
    spec: EnvSpec, cameras: Sequence[str] | None, image_size: int, time_limit: int | None
) -> gym.Env[Any, Any]:
    kwargs = dict(spec.kwargs)
    if time_limit is not None:
        kwargs.setdefault("horizon", time_limit)
    if cameras is not None:
        kwargs["cameras"] = tuple(cameras)
    kwargs.setdefault("image_size", image_size)
    import sim  # MuJoCo is imported only when a sim env is made

    return sim.make_env(spec.name, **kwargs)


def sim_expert(task: str) -> Any:
    """The scripted expert of a sim task (``sim.expert_for``)."""
    import sim

    return sim.expert_for(task)


def is_image_space(space: spaces.Space[Any]) -> bool:
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def success_of(info: dict[str, Any], reward: float) -> bool:
    """``info["success"]`` / ``info["is_success"]`` when present, else reward > 0."""
    for key in ("success", "is_success"):
        if key in info:
            return bool(np.asarray(info[key]).any())
    return float(reward) > 0


class CanonicalEnv(gym.Wrapper[Any, Any, Any, Any]):
    """Canonical dict observations, actions in [-1, 1], ``info["success"]`` always set.

    ``raw_obs`` keeps the last unwrapped observation (scripted policies read it).
    """

    def __init__(self, env: gym.Env[Any, Any], cameras: Sequence[str] | None = None):
        super().__init__(env)
        space = env.observation_space
        self.state_keys, self.cameras = _split_space(space, cameras)
        act = env.action_space
        if not isinstance(act, spaces.Box) or len(act.shape) != 1:
            raise EnvSpecError(f"only 1-D Box action spaces are supported, got {act}")
        if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
            raise EnvSpecError("the action space must be bounded")
        self._low, self._high = act.low.astype(np.float64), act.high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, act.shape, np.float32)
        self.action_dim = int(act.shape[0])
        self.image_shapes: dict[str, tuple[int, ...]] = {}
        if isinstance(env.observation_space, spaces.Dict):
            spaces_ = env.observation_space.spaces
            self.image_shapes = {c: tuple(spaces_[c].shape or ()) for c in self.cameras}
        self.raw_obs: Any = None

    @property
    def state_dim(self) -> int:
        return int(self.convert(self.env.observation_space.sample())["state"].shape[0])

    def convert(self, obs: Any) -> dict[str, np.ndarray]:
        if not isinstance(obs, dict):
            return {"state": np.asarray(obs, np.float32).ravel()}
        parts = [np.asarray(obs[k], np.float32).ravel() for k in self.state_keys]
        state = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return {"state": state, **{c: np.asarray(obs[c], np.uint8) for c in self.cameras}}

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.raw_obs = obs
        return self.convert(obs), dict(info)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        env_action = self._low + (a + 1.0) * 0.5 * (self._high - self._low)
        obs, reward, terminated, truncated, info = self.env.step(env_action.astype(np.float32))
        self.raw_obs = obs
        info = dict(info)
        info["success"] = success_of(info, float(reward))
        return self.convert(obs), float(reward), bool(terminated), bool(truncated), info

    def unscale(self, env_action: np.ndarray) -> np.ndarray:
        """An action in the env's units -> [-1, 1] (for scripted policies)."""
        scaled = (
            2.0 * (np.asarray(env_action, np.float64) - self._low) / (self._high - self._low) - 1
        )
        return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def _split_space(
    space: spaces.Space[Any], cameras: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    if isinstance(space, spaces.Box):
        return [], []
    if not isinstance(space, spaces.Dict):
        raise EnvSpecError(f"observations must be a Box or a Dict, got {type(space).__name__}")
    images = [k for k, s in space.spaces.items() if is_image_space(s)]
    if cameras is not None:
        images = [c for c in images if c in cameras]
    states = ["state"] if "state" in space.spaces else [
        k for k, s in space.spaces.items() if isinstance(s, spaces.Box) and not is_image_space(s)
    ]  # fmt: skip
    return states, images
