"""Replay: demonstrations kept for the whole run plus a bounded online buffer.

Both are ``TransitionRing``s: rings of frames holding whole episodes (not to be confused with
the server's episode store on disk). Every transition stores its n-step return and
bootstrap discount, computed when its episode is added: the discount is gamma**m (m = steps
to the bootstrap frame, m <= n) and 0 only when the window reaches a ``terminated`` end.
A time-limit truncation therefore bootstraps from the final observation.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

import numpy as np

Batch = dict[str, Any]
SampleMode = Literal["uniform", "rlpd"]


def nstep_targets(
    reward: np.ndarray, terminated: bool, n: int, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-step returns of one episode.

    Args:
        reward: [T] rewards r_0..r_{T-1}; frame T is the observation after the last action.
        terminated: the episode ended in a terminal state (no bootstrap from frame T).

    Returns:
        (ret [T], discount [T], offset [T]): ret_t = sum_{k<m} gamma^k r_{t+k} with
        m = min(n, T - t); bootstrap frame t + m with weight discount_t.
    """
    t_len = len(reward)
    t = np.arange(t_len)
    offset = np.minimum(n, t_len - t)
    ret = np.zeros(t_len, np.float64)
    for k in range(n):
        valid = k < offset
        ret[valid] += gamma**k * reward[t[valid] + k]
    discount = gamma ** offset.astype(np.float64)
    if terminated:
        discount[t + offset == t_len] = 0.0
    return ret.astype(np.float32), discount.astype(np.float32), offset.astype(np.int64)


class TransitionRing:
    """Ring buffer of frames holding whole episodes, sampled as n-step transitions; the
    oldest episodes are evicted when full."""

    def __init__(
        self,
        capacity: int,
        obs_shapes: dict[str, tuple[tuple[int, ...], str]],
        action_dim: int,
        n_step: int,
        gamma: float,
        *,
        evict: bool = True,
    ):
        self.capacity = capacity
        self.n_step, self.gamma, self.evict = n_step, gamma, evict
        self.obs = {
            k: np.zeros((capacity, *shape), dtype) for k, (shape, dtype) in obs_shapes.items()
        }
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.ret = np.zeros(capacity, np.float32)
        self.discount = np.zeros(capacity, np.float32)
        self.offset = np.zeros(capacity, np.int64)
        self.valid = np.zeros(capacity, bool)
        self.episodes: deque[tuple[int, int]] = deque()  # (start frame, frames) oldest first
        self.ptr = 0
        self._valid_idx = np.zeros(0, np.int64)

    def __len__(self) -> int:
        """Number of stored transitions."""
        return len(self._valid_idx)

    @property
    def num_frames(self) -> int:
        return sum(n for _, n in self.episodes)

    def add_episode(
        self, obs: dict[str, np.ndarray], action: np.ndarray, reward: np.ndarray, terminated: bool
    ) -> None:
        """Add T transitions: ``obs`` arrays [T + 1, ...], ``action`` [T, A], ``reward`` [T]."""
        t_len = len(action)
        frames = t_len + 1
        if t_len == 0:
            return
        if frames > self.capacity:
            raise ValueError(f"episode of {frames} frames exceeds capacity {self.capacity}")
        if self.ptr + frames > self.capacity:
            if not self.evict:
                raise ValueError(f"demo store full ({self.capacity} frames); cannot add episode")
            self.ptr = 0
        self._evict_overlapping(self.ptr, self.ptr + frames)
        sl = slice(self.ptr, self.ptr + frames)
        for key, array in self.obs.items():
            array[sl] = obs[key]
        ret, discount, offset = nstep_targets(
            np.asarray(reward, np.float64), terminated, self.n_step, self.gamma
        )
        tsl = slice(self.ptr, self.ptr + t_len)
        self.action[tsl] = action
        self.ret[tsl], self.discount[tsl], self.offset[tsl] = ret, discount, offset
        self.valid[tsl] = True
        self.valid[self.ptr + t_len] = False  # the final frame starts no transition
        self.episodes.append((self.ptr, frames))
        self.ptr += frames
        self._valid_idx = np.flatnonzero(self.valid)

    def _evict_overlapping(self, lo: int, hi: int) -> None:
        kept: deque[tuple[int, int]] = deque()
        for start, n in self.episodes:
            if start < hi and start + n > lo:
                self.valid[start : start + n] = False
            else:
                kept.append((start, n))
        self.episodes = kept

    def sample(self, size: int, rng: np.random.Generator) -> Batch:
        """``size`` transitions drawn uniformly (with replacement)."""
        idx = self._valid_idx[rng.integers(0, len(self._valid_idx), size)]
        nxt = idx + self.offset[idx]
        return {
            "obs": {k: v[idx] for k, v in self.obs.items()},
            "next_obs": {k: v[nxt] for k, v in self.obs.items()},
            "action": self.action[idx],
            "reward": self.ret[idx],
            "discount": self.discount[idx],
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to restore the store, as plain arrays (for ``np.savez``)."""
        out = {f"obs.{k}": v for k, v in self.obs.items()}
        out.update(action=self.action, ret=self.ret, discount=self.discount, offset=self.offset)
        out.update(valid=self.valid, ptr=np.asarray(self.ptr))
        out["episodes"] = np.asarray(list(self.episodes), np.int64).reshape(-1, 2)
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        for key in self.obs:
            self.obs[key][...] = arrays[f"obs.{key}"]
        for name in ("action", "ret", "discount", "offset", "valid"):
            getattr(self, name)[...] = arrays[name]
        self.ptr = int(arrays["ptr"])
        self.episodes = deque((int(s), int(n)) for s, n in arrays["episodes"])
        self._valid_idx = np.flatnonzero(self.valid)


def concat_batches(a: Batch, b: Batch) -> Batch:
    """Concatenate two batches along the batch axis."""
    out: Batch = {}
    for key, value in a.items():
        if isinstance(value, dict):
            out[key] = {k: np.concatenate([v, b[key][k]]) for k, v in value.items()}
        else:
            out[key] = np.concatenate([value, b[key]])
    return out


def sampling(method: str, rlpd_frac: float, ibrl_frac: float | None) -> tuple[SampleMode, float]:
    """The sampling rule of a method: (mode, demo fraction) for ``Replay``."""
    if method == "rlpd":
        return "rlpd", rlpd_frac
    return ("uniform", 0.0) if ibrl_frac is None else ("rlpd", ibrl_frac)


class Replay:
    """Demo store (never evicted) + online store (bounded) with the method's sampling rule.

    ``uniform`` (ibrl, ibrl_soft, rl): one pool, transitions drawn uniformly over demos and
    online data together (no oversampling of demos). ``rlpd``: a fixed fraction of each batch
    from the demos and the rest from online data (online empty -> all demos).
    """

    def __init__(
        self,
        demos: TransitionRing,
        online: TransitionRing,
        mode: SampleMode,
        demo_frac: float = 0.5,
    ):
        self.demos, self.online = demos, online
        self.mode, self.demo_frac = mode, demo_frac

    def __len__(self) -> int:
        return len(self.demos) + len(self.online)

    def sample(self, size: int, rng: np.random.Generator) -> Batch:
        n_demo, n_online = len(self.demos), len(self.online)
        if n_demo + n_online == 0:
            raise ValueError("replay is empty")
        if self.mode == "rlpd":
            k = round(size * self.demo_frac) if n_online else size
        else:
            k = int(rng.binomial(size, n_demo / (n_demo + n_online)))
        k = 0 if n_demo == 0 else (size if n_online == 0 else k)
        parts = [s.sample(m, rng) for s, m in ((self.demos, k), (self.online, size - k)) if m > 0]
        return parts[0] if len(parts) == 1 else concat_batches(parts[0], parts[1])
