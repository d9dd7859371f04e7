"""Offline datasets: transitions from Tandem's episode store, a robomimic-layout HDF5
export (``tandem export``) or a D4RL-style HDF5 file.

Every reader returns ``Transitions`` with state observations and actions in [-1, 1].
``terminated`` marks true terminal transitions (no bootstrap); a time-limit truncation is
not a termination, so the critic still bootstraps from its next observation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tandem.episodes import Episode, list_episodes, load_episode
from tandem.messages import ACTION_DIM

log = logging.getLogger(__name__)
HDF5_SUFFIXES = (".hdf5", ".h5")


class DatasetError(ValueError):
    """A dataset is missing, unreadable or does not match the environment."""


@dataclass
class Transitions:
    """N transitions: obs/next_obs [N, S] float32, action [N, A] in [-1, 1], reward [N],
    terminated [N] bool; ``episodes`` and ``successes`` count the episodes they came from."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    episodes: int = 0
    successes: int = 0

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @classmethod
    def concat(cls, parts: list[Transitions]) -> Transitions:
        if not parts:
            raise DatasetError("no transitions")
        arrays = {k: np.concatenate([getattr(p, k) for p in parts])
                  for k in ("obs", "action", "reward", "next_obs", "terminated")}  # fmt: skip
        return cls(**arrays, episodes=sum(p.episodes for p in parts),
                   successes=sum(p.successes for p in parts))  # fmt: skip

    def summary(self) -> str:
        ends = int(self.terminated.sum())
        return (f"{len(self)} transitions from {self.episodes} episodes "
                f"({self.successes} successful, {ends} terminal steps)")  # fmt: skip


def load_dataset(path: str | Path, action_dim: int | None = None) -> Transitions:
    """Read ``path``: an episode-store directory, or an HDF5 file (robomimic layout with a
    ``data`` group, or D4RL layout with ``observations``). ``action_dim`` trims the episode
    format's zero-padded 7-vector actions (checked to be unused beyond it)."""
    path = Path(path)
    if path.suffix in HDF5_SUFFIXES:
        data = _load_hdf5(path)
    elif path.is_dir():
        data = load_episode_store(path)
    else:
        raise DatasetError(f"{path}: neither an episode directory nor an .hdf5 file")
    if action_dim is not None:
        data.action = _trim_actions(data.action, action_dim, path)
    if len(data) == 0:
        raise DatasetError(f"{path}: no transitions")
    log.info("loaded %s from %s", data.summary(), path)
    return data


def _trim_actions(action: np.ndarray, action_dim: int, path: Path) -> np.ndarray:
    if action.shape[1] < action_dim:
        raise DatasetError(f"{path}: actions have {action.shape[1]} dims, the env {action_dim}")
    if np.abs(action[:, action_dim:]).max(initial=0.0) > 0:
        raise DatasetError(f"{path}: actions use more than the env's {action_dim} dims")
    return np.ascontiguousarray(action[:, :action_dim])


# ------------------------------------------------------------------ Tandem episode store
def load_episode_store(root: str | Path) -> Transitions:
    """Every complete episode under ``root`` (demos, rollouts, interventions, evaluations)."""
    parts = []
    for path in list_episodes(root):
        episode = load_episode(path, images=False)
        if episode.meta.complete and len(episode) > 0:
            parts.append(episode_transitions(episode))
    if not parts:
        raise DatasetError(f"no complete episodes under {root}")
    return Transitions.concat(parts)


def episode_transitions(episode: Episode) -> Transitions:
    """One stored episode -> transitions. The next observation of the last step is
    ``final.npz``'s state; without it a terminated episode repeats its last state (never
    bootstrapped from) and a truncated one drops its last transition."""
    steps, meta = episode.steps, episode.meta
    n_act = int(meta.extra.get("action_dim", ACTION_DIM))
    states = steps["state"].astype(np.float32)
    terminated = steps["terminated"].astype(bool)
    if meta.terminated and not terminated[-1]:
        terminated[-1] = True
    if "state" in episode.final:
        last = episode.final["state"][None].astype(np.float32)
    elif terminated[-1]:
        last = states[-1:]
    else:
        last = None
    next_states = np.concatenate([states[1:], last]) if last is not None else states[1:]
    n = next_states.shape[0]
    return Transitions(
        states[:n], steps["action"][:n, :n_act].astype(np.float32),
        steps["reward"][:n].astype(np.float32), next_states, terminated[:n],
        episodes=1, successes=int(meta.success),
    )  # fmt: skip


# ---------------------------------------------------------------------------- HDF5 files
def _load_hdf5(path: Path) -> Transitions:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "data" in f:
                return _robomimic(f["data"])
            if "observations" in f:
                return _d4rl(f)
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable HDF5 dataset: {exc}") from None
    raise DatasetError(f"{path}: neither robomimic (data/) nor D4RL (observations) layout")


def _robomimic(data: Any) -> Transitions:
    """``data/demo_N/{obs/state, next_obs/state, actions, rewards, terminated | dones}``;
    files without ``terminated`` (other robomimic writers) treat ``dones`` as terminal."""
    parts = []
    for group in sorted(data.values(), key=lambda g: int(g.name.rsplit("_", 1)[-1])):
        n = int(group["actions"].shape[0])
        if n == 0:
            continue
        key = "terminated" if "terminated" in group else "dones"
        parts.append(Transitions(
            group["obs/state"][:].astype(np.float32), group["actions"][:].astype(np.float32),
            group["rewards"][:].astype(np.float32), group["next_obs/state"][:].astype(np.float32),
            group[key][:].astype(bool), episodes=1,
            successes=int(bool(group.attrs.get("success", group["rewards"][:].max() > 0))),
        ))  # fmt: skip
    return Transitions.concat(parts)


def _d4rl(f: Any) -> Transitions:
    """``observations, actions, rewards, terminals, timeouts`` (and ``next_observations``
    when present). Without next_observations, the next observation is the following row,
    and a transition that ends an episode by timeout has none, so it is dropped."""
    obs = f["observations"][:].astype(np.float32)
    terminals = f["terminals"][:].astype(bool)
    timeouts = f["timeouts"][:].astype(bool) if "timeouts" in f else np.zeros_like(terminals)
    keep = np.ones(len(obs), bool)
    if "next_observations" in f:
        next_obs = f["next_observations"][:].astype(np.float32)
    else:
        next_obs = np.concatenate([obs[1:], obs[-1:]])
        keep = ~timeouts & ~(np.arange(len(obs)) == len(obs) - 1) | terminals
    ends = terminals | timeouts
    rewards = f["rewards"][:].astype(np.float32)
    return Transitions(
        obs[keep], f["actions"][:].astype(np.float32)[keep], rewards[keep], next_obs[keep],
        terminals[keep], episodes=int(ends.sum()) or 1,
        successes=int((terminals & (rewards > 0)).sum()),
    )  # fmt: skip
