"""Replay: demonstrations kept for the whole run plus a bounded online buffer.

Both are ``TransitionRing``s: rings of frames holding whole episodes (not to be confused with
the server's episode store on disk). Every transition stores its n-step return and
bootstrap discount, computed when its episode is added: the discount is gamma**m (m = steps
to the bootstrap frame, m <= n) and 0 only when the window reaches a ``terminated`` end.
A time-limit truncation therefore bootstraps from the final observation.

Two optional speed-ups keep the same numbers (docs/learner.md, "Speed"):

* ``set_il_proposal`` caches the frozen IL policy's action a_IL(obs) of every stored frame,
  computed once when its episode enters the ring (and again for every frame when the IL
  version changes); batches then carry ``next_il_action`` [B, A], the TD target's IL proposal.
* ``mirror(device)`` keeps a torch copy of the ring on a device (CUDA: states and uint8 images
  on the GPU); ``Replay.sample_torch`` then gathers batches there and copies only the indices.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from learner.obs import to_torch

Batch = dict[str, Any]
SampleMode = Literal["uniform", "rlpd"]
ILProposal = Callable[[dict[str, np.ndarray]], np.ndarray]  # frames [N, ...] -> a_IL [N, A]
IL_CHUNK = 1024  # frames per IL call when the cache is (re)computed


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
        self.adds = 0  # episodes added so far (install_il_cache: which came after a snapshot)
        self.ptr = 0
        self._valid_idx = np.zeros(0, np.int64)
        self.il_action: np.ndarray | None = None  # [capacity, A] a_IL of each frame (cache)
        self.il_version: int | None = None
        self._il: ILProposal | None = None
        self._mirror: dict[str, torch.Tensor] | None = None
        self.mirror_device: torch.device | None = None

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
        if self._il is not None and self.il_action is not None:
            self.il_action[sl] = self._propose(self._il, self.ptr, frames)
        self._copy_to_mirror(sl)
        self.episodes.append((self.ptr, frames))
        self.adds += 1
        self.ptr += frames
        self._valid_idx = np.flatnonzero(self.valid)

    # ------------------------------------------------------------------ IL proposal cache
    def set_il_proposal(self, il: ILProposal | None, version: int = 0) -> None:
        """Cache ``il`` (frames -> a_IL [N, A]) for every frame: the stored frames now, each
        new episode when it is added. Call again with a new ``version`` when the IL policy
        changes: the whole cache is computed into a new array and swapped in at once, so a
        concurrent ``sample`` sees the old or the new cache, never a mix. None drops it."""
        if il is None:
            self._il, self.il_action, self.il_version = None, None, None
            self._copy_to_mirror(slice(0, 0))
            return
        if il is self._il and version == self.il_version:
            return
        adds = self.adds
        self.install_il_cache(il, version, self.compute_il_cache(il, list(self.episodes)), adds)

    def compute_il_cache(self, il: ILProposal, episodes: list[tuple[int, int]]) -> np.ndarray:
        """A new cache array holding ``il``'s a_IL of the frames of ``episodes`` (a snapshot of
        ``self.episodes``). It only reads the ring: a thread may run it while another adds
        episodes, as long as ``install_il_cache`` gets the ``adds`` count of the snapshot."""
        cache = np.zeros_like(self.action)
        for start, frames in episodes:
            cache[start : start + frames] = self._propose(il, start, frames)
        return cache

    def install_il_cache(self, il: ILProposal, version: int, cache: np.ndarray, adds: int) -> None:
        """Swap in ``cache`` (``compute_il_cache`` of a snapshot taken when ``self.adds`` was
        ``adds``) once the episodes added since, whose frames it may have read half-written or
        not at all, are computed again; from now on new episodes are cached with ``il``."""
        recent = list(self.episodes)[max(0, len(self.episodes) - (self.adds - adds)) :]
        for start, frames in recent:
            cache[start : start + frames] = self._propose(il, start, frames)
        self._il, self.il_action, self.il_version = il, cache, version
        self._copy_to_mirror(slice(0, self.capacity))

    def _propose(self, il: ILProposal, start: int, frames: int) -> np.ndarray:
        out = np.empty((frames, self.action.shape[1]), np.float32)
        for lo in range(0, frames, IL_CHUNK):
            hi = min(lo + IL_CHUNK, frames)
            chunk = {k: v[start + lo : start + hi] for k, v in self.obs.items()}
            out[lo:hi] = il(chunk)
        return out

    # ------------------------------------------------------------------ device mirror
    def mirror(self, device: torch.device | str) -> None:
        """Keep a torch copy of the stored arrays on ``device`` (updated by ``add_episode``)."""
        self._mirror, self.mirror_device = {}, torch.device(device)
        self._copy_to_mirror(slice(0, self.capacity))

    def _arrays_to_mirror(self) -> dict[str, np.ndarray]:
        arrays = {f"obs.{k}": v for k, v in self.obs.items()}
        arrays.update(action=self.action, ret=self.ret, discount=self.discount)
        if self.il_action is not None:
            arrays["il_action"] = self.il_action
        return arrays

    def _copy_to_mirror(self, sl: slice) -> None:
        if self._mirror is None:
            return
        device = self.mirror_device
        if "il_action" in self._mirror and self.il_action is None:
            del self._mirror["il_action"]
        for key, array in self._arrays_to_mirror().items():
            if key not in self._mirror:
                self._mirror[key] = torch.as_tensor(array).to(device)
            elif sl.stop > sl.start:
                self._mirror[key][sl] = torch.as_tensor(array[sl]).to(device, non_blocking=True)

    def _evict_overlapping(self, lo: int, hi: int) -> None:
        kept: deque[tuple[int, int]] = deque()
        for start, n in self.episodes:
            if start < hi and start + n > lo:
                self.valid[start : start + n] = False
            else:
                kept.append((start, n))
        self.episodes = kept

    def _indices(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = self._valid_idx[rng.integers(0, len(self._valid_idx), size)]
        return idx, idx + self.offset[idx]

    def sample(self, size: int, rng: np.random.Generator) -> Batch:
        """``size`` transitions drawn uniformly (with replacement); ``next_il_action`` too
        when the IL proposal is cached."""
        idx, nxt = self._indices(size, rng)
        batch = {
            "obs": {k: v[idx] for k, v in self.obs.items()},
            "next_obs": {k: v[nxt] for k, v in self.obs.items()},
            "action": self.action[idx],
            "reward": self.ret[idx],
            "discount": self.discount[idx],
        }
        if self.il_action is not None:
            batch["next_il_action"] = self.il_action[nxt]
        return batch

    def sample_torch(self, size: int, rng: np.random.Generator) -> Batch:
        """``sample`` (the same draw from ``rng``) gathered from the device mirror: tensors
        on the mirror's device; only the indices cross from the host."""
        if self._mirror is None:
            raise ValueError("sample_torch needs a mirror (call mirror(device) first)")
        m = self._mirror
        idx_np, nxt_np = self._indices(size, rng)
        both = torch.from_numpy(np.concatenate([idx_np, nxt_np])).to(self.mirror_device)
        idx, nxt = both[:size], both[size:]
        batch: Batch = {
            "obs": {k: m[f"obs.{k}"][idx] for k in self.obs},
            "next_obs": {k: m[f"obs.{k}"][nxt] for k in self.obs},
            "action": m["action"][idx],
            "reward": m["ret"][idx],
            "discount": m["discount"][idx],
        }
        if "il_action" in m:
            batch["next_il_action"] = m["il_action"][nxt]
        return batch

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
        if self._il is not None:
            il, self._il = self._il, None
            self.set_il_proposal(il, self.il_version or 0)
        self._copy_to_mirror(slice(0, self.capacity))


def il_cache_fn(il: torch.nn.Module, device: torch.device) -> ILProposal:
    """The cache function of ``set_il_proposal``: frames (numpy) -> ``il(obs)`` [N, A] (numpy)."""

    def propose(frames: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            action: np.ndarray = il(to_torch(frames, device, batch=True)).float().cpu().numpy()
        return action

    return propose


def concat_batches(a: Batch, b: Batch) -> Batch:
    """Concatenate two batches (numpy or torch) along the batch axis."""
    out: Batch = {}
    for key, value in a.items():
        if isinstance(value, dict):
            out[key] = {k: _cat(v, b[key][k]) for k, v in value.items()}
        else:
            out[key] = _cat(value, b[key])
    return out


def _cat(a: Any, b: Any) -> Any:
    return torch.cat([a, b]) if isinstance(a, torch.Tensor) else np.concatenate([a, b])


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

    def set_il_proposal(self, il: ILProposal | None, version: int = 0) -> None:
        """Cache the IL proposal in both stores (``TransitionRing.set_il_proposal``)."""
        self.demos.set_il_proposal(il, version)
        self.online.set_il_proposal(il, version)

    def mirror(self, device: torch.device | str) -> None:
        """Keep both stores on ``device`` too (``TransitionRing.mirror``)."""
        self.demos.mirror(device)
        self.online.mirror(device)

    def sample(self, size: int, rng: np.random.Generator) -> Batch:
        """A batch of numpy arrays drawn by the method's rule."""
        parts = [s.sample(m, rng) for s, m in self._split(size, rng)]
        return parts[0] if len(parts) == 1 else concat_batches(parts[0], parts[1])

    def sample_torch(self, size: int, rng: np.random.Generator) -> Batch:
        """``sample`` (the same draws) gathered on the stores' device mirror."""
        parts = [s.sample_torch(m, rng) for s, m in self._split(size, rng)]
        return parts[0] if len(parts) == 1 else concat_batches(parts[0], parts[1])

    def _split(self, size: int, rng: np.random.Generator) -> list[tuple[TransitionRing, int]]:
        n_demo, n_online = len(self.demos), len(self.online)
        if n_demo + n_online == 0:
            raise ValueError("replay is empty")
        if self.mode == "rlpd":
            k = round(size * self.demo_frac) if n_online else size
        else:
            k = int(rng.binomial(size, n_demo / (n_demo + n_online)))
        k = 0 if n_demo == 0 else (size if n_online == 0 else k)
        return [(s, m) for s, m in ((self.demos, k), (self.online, size - k)) if m > 0]
