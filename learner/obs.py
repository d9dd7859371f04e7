"""Observation layout shared by the agent, the IL policy, replay and the runners.

An observation is a dict: ``"state"`` float32 [S] and one uint8 [H, W, C] image per camera
(C = 3 * frame_stack). Batches add a leading B axis. Stacking keeps the last k frames/states
(oldest first), repeating the first observation of an episode to fill the history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

Obs = dict[str, np.ndarray]


@dataclass(frozen=True)
class ObsSpec:
    """What the networks see after stacking and state slicing."""

    state_dim: int  # after state stacking
    action_dim: int
    cameras: tuple[str, ...] = ()
    image_shape: tuple[int, int, int] | None = None  # H, W, C after frame stacking
    raw_state_dim: int = 0  # entries of the env's state vector used per frame
    frame_stack: int = 1
    state_stack: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pixels(self) -> bool:
        return bool(self.cameras)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObsSpec:
        data = dict(data)
        data["cameras"] = tuple(data.get("cameras", ()))
        if data.get("image_shape") is not None:
            data["image_shape"] = tuple(data["image_shape"])
        return cls(**data)


class Stacker:
    """Turns raw per-step observations into stacked ones, one episode at a time."""

    def __init__(self, spec: ObsSpec):
        self.spec = spec
        self._states: deque[np.ndarray] = deque(maxlen=spec.state_stack)
        self._frames: dict[str, deque[np.ndarray]] = {
            c: deque(maxlen=spec.frame_stack) for c in spec.cameras
        }

    def reset(self, raw: Obs) -> Obs:
        state = self._state(raw)
        self._states.extend([state] * self.spec.state_stack)
        for cam, frames in self._frames.items():
            frames.extend([raw[cam]] * self.spec.frame_stack)
        return self._current()

    def step(self, raw: Obs) -> Obs:
        self._states.append(self._state(raw))
        for cam, frames in self._frames.items():
            frames.append(raw[cam])
        return self._current()

    def _state(self, raw: Obs) -> np.ndarray:
        return np.asarray(raw["state"], np.float32)[: self.spec.raw_state_dim]

    def _current(self) -> Obs:
        obs = {"state": np.concatenate(list(self._states))}
        for cam, frames in self._frames.items():
            obs[cam] = np.concatenate(list(frames), axis=-1)
        return obs


def stack_episode(spec: ObsSpec, states: np.ndarray, images: dict[str, np.ndarray]) -> Obs:
    """Stack a whole episode: states [T, S_raw], images {cam: [T, H, W, 3]} -> arrays [T, ...]."""
    stacker = Stacker(spec)
    out: list[Obs] = []
    for t in range(states.shape[0]):
        raw = {"state": states[t], **{c: images[c][t] for c in spec.cameras}}
        out.append(stacker.reset(raw) if t == 0 else stacker.step(raw))
    return {k: np.stack([o[k] for o in out]) for k in out[0]} if out else {}


def to_torch(
    obs: Obs, device: torch.device | str, *, batch: bool = False
) -> dict[str, torch.Tensor]:
    """numpy observation (or batch when ``batch``) -> tensors on ``device`` with a batch axis."""
    out = {}
    for key, value in obs.items():
        t = torch.as_tensor(np.asarray(value)).to(device)
        out[key] = t if batch else t.unsqueeze(0)
    return out


class Normalizer(nn.Module):
    """Standardises the state vector with statistics from the demonstrations."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, states: np.ndarray, min_std: float = 1e-2) -> None:
        """Set mean/std from states [N, dim]; std is floored at ``min_std``."""
        x = torch.as_tensor(np.asarray(states, np.float32))
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0, unbiased=False).clamp_min(min_std))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return (state.float() - self.mean) / self.std
