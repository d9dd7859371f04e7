"""The learner service's data: the core's replay plus the HG-DAgger imitation data.

* ``demos``: demonstration transitions, never evicted (the core's demo store);
* ``online``: rollout transitions (interventions included), bounded, oldest evicted;
* ``interventions``: human-driven segments of rollouts, imitation data only.

The replay used for RL is the core's ``Replay`` over ``demos`` + ``online``;
the imitation data is ``demos`` + ``interventions``. Every transition in the
replay is indexed by ``(robot_id, episode_id, step)`` with its step-stream
``seq``: a transition already held is never added twice, and ``index()`` proves
what the buffers hold. All access goes through one lock (the trainer adds and
samples, a refit samples imitation data from its own thread).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import numpy as np

from learner.episode_arrays import Segment
from learner.obs import ObsSpec, stack_episode
from learner.replay import Batch, Replay, SampleMode, TransitionRing, concat_batches

log = logging.getLogger(__name__)

StepKey = tuple[str, str, int]  # (robot_id, episode_id, step)


def spec_for(
    segment: Segment,
    *,
    pixels: bool,
    cameras: list[str],
    action_dim: int,
    state_dims: int | None = None,
    state_stack: int = 1,
    frame_stack: int = 1,
) -> ObsSpec:
    """The observation spec of the networks for data shaped like ``segment``.

    ``state_dims`` keeps the first entries of the state vector; stacking
    multiplies the state width and the image channels.
    """
    raw = min(int(segment.states.shape[1]), state_dims or int(segment.states.shape[1]))
    common = {
        "state_dim": raw * state_stack, "action_dim": action_dim, "raw_state_dim": raw,
        "state_stack": state_stack, "frame_stack": frame_stack,
    }  # fmt: skip
    if not pixels:
        return ObsSpec(**common)  # type: ignore[arg-type]
    cams = tuple(cameras or sorted(segment.images))
    missing = [c for c in cams if c not in segment.images]
    if missing:
        raise ValueError(f"cameras {missing} are not in the data (has {sorted(segment.images)})")
    h, w, c = segment.images[cams[0]].shape[1:]
    return ObsSpec(cameras=cams, image_shape=(h, w, c * frame_stack), **common)  # type: ignore[arg-type]


def _obs_shapes(spec: ObsSpec) -> dict[str, tuple[tuple[int, ...], str]]:
    shapes: dict[str, tuple[tuple[int, ...], str]] = {"state": ((spec.state_dim,), "float32")}
    for cam in spec.cameras:
        assert spec.image_shape is not None
        shapes[cam] = (spec.image_shape, "uint8")
    return shapes


class ServiceData:
    """Demo, online and intervention stores with a transition index (see module doc)."""

    def __init__(
        self,
        spec: ObsSpec,
        *,
        demo_capacity: int,
        online_capacity: int,
        intervention_capacity: int,
        n_step: int,
        gamma: float,
        mode: SampleMode,
        demo_frac: float,
    ) -> None:
        self.spec = spec
        shapes = _obs_shapes(spec)
        a = spec.action_dim
        self.demos = TransitionRing(demo_capacity, shapes, a, n_step, gamma, evict=False)
        self.online = TransitionRing(online_capacity, shapes, a, n_step, gamma)
        self.interventions = TransitionRing(intervention_capacity, shapes, a, n_step, gamma)
        self.replay = Replay(self.demos, self.online, mode, demo_frac)
        self.lock = threading.Lock()
        self._demo_keys: dict[StepKey, int] = {}
        self._online_keys: deque[tuple[int, int, dict[StepKey, int]]] = deque()
        self._online_index: dict[StepKey, int] = {}
        self.duplicates = 0
        self.intervention_steps = 0

    # ------------------------------------------------------------------ adding
    def add_demo(self, segment: Segment) -> int:
        """Add a demonstration segment; returns the transitions added."""
        added = 0
        for seg in self._new_parts(segment):
            obs = self._obs(seg)
            with self.lock:
                self.demos.add_episode(obs, seg.actions, seg.rewards, seg.terminated)
                self._demo_keys.update(_keys(seg))
            added += len(seg)
        return added

    def add_online(self, segment: Segment) -> int:
        """Add a rollout segment to the bounded online store; returns the transitions added."""
        added = 0
        for seg in self._new_parts(segment):
            obs = self._obs(seg)
            with self.lock:
                self.online.add_episode(obs, seg.actions, seg.rewards, seg.terminated)
                start, frames = self.online.episodes[-1]
                self._forget_evicted(start, start + frames)
                keys = _keys(seg)
                self._online_keys.append((start, frames, keys))
                self._online_index.update(keys)
            added += len(seg)
        return added

    def add_intervention(self, seg: Segment) -> int:
        with self.lock:
            self.interventions.add_episode(self._obs(seg), seg.actions, seg.rewards, seg.terminated)
        self.intervention_steps += len(seg)
        return len(seg)

    def _obs(self, seg: Segment) -> dict[str, np.ndarray]:
        return stack_episode(self.spec, seg.states, seg.images)

    def _new_parts(self, seg: Segment) -> list[Segment]:
        """``seg`` without the transitions the replay already holds (counted as duplicates)."""
        with self.lock:
            held = np.array(
                [k in self._demo_keys or k in self._online_index for k in _keys(seg)], bool
            )
        if not held.any():
            return [seg]
        self.duplicates += int(held.sum())
        log.warning(
            "%d transitions of %s/%s already held: not added again",
            int(held.sum()), seg.robot_id, seg.episode_id,
        )  # fmt: skip
        return seg.select(~held)

    def _forget_evicted(self, lo: int, hi: int) -> None:
        """Drop the keys of older episodes whose frames [lo, hi) were just overwritten."""
        kept: deque[tuple[int, int, dict[StepKey, int]]] = deque()
        for start, frames, keys in self._online_keys:
            if start < hi and start + frames > lo:
                for key in keys:
                    self._online_index.pop(key, None)
            else:
                kept.append((start, frames, keys))
        self._online_keys = kept

    def demo_states(self) -> np.ndarray:
        """Network-input (stacked) states of every demo frame, [N, state_dim]."""
        with self.lock:
            return _states(self.demos)

    def il_states(self) -> np.ndarray:
        """Network-input states of all imitation data (demos, then interventions), [N, D]."""
        with self.lock:
            return np.concatenate([_states(self.demos), _states(self.interventions)])

    def drop_il_proposal(self) -> None:
        """Forget the replay's IL cache (``learner.service.il_cache`` computes the next)."""
        with self.lock:
            self.replay.set_il_proposal(None)

    # ------------------------------------------------------------------ sampling
    def __len__(self) -> int:
        with self.lock:
            return len(self.replay)

    def sample_rl(self, size: int, rng: np.random.Generator) -> Batch:
        with self.lock:
            return self.replay.sample(size, rng)

    def il_size(self) -> int:
        with self.lock:
            return len(self.demos) + len(self.interventions)

    def sample_il(self, size: int, rng: np.random.Generator) -> tuple[dict[str, Any], Any]:
        """(obs, action) drawn uniformly over demo and intervention transitions."""
        with self.lock:
            n_demo, n_int = len(self.demos), len(self.interventions)
            if n_demo + n_int == 0:
                raise ValueError("no imitation data")
            k = int(rng.binomial(size, n_demo / (n_demo + n_int)))
            parts = [
                _obs_action(store.sample(m, rng))
                for store, m in ((self.demos, k), (self.interventions, size - k))
                if m > 0
            ]
        batch = parts[0] if len(parts) == 1 else concat_batches(parts[0], parts[1])
        return batch["obs"], batch["action"]

    # ------------------------------------------------------------------ accounting
    def index(self) -> dict[str, Any]:
        """What the replay holds: per robot, the (episode, step, seq) of every transition."""
        with self.lock:
            rows = [(*k, seq, "demo") for k, seq in self._demo_keys.items()]
            rows += [(*k, seq, "online") for k, seq in self._online_index.items()]
        return {"transitions": len(rows), "duplicates": self.duplicates, "rows": rows}

    def sizes(self) -> dict[str, float]:
        with self.lock:
            return {
                "buffer/demo": float(len(self.demos)),
                "buffer/online": float(len(self.online)),
                "buffer/interventions": float(len(self.interventions)),
                "buffer/total": float(len(self.replay)),
            }


def _obs_action(batch: Batch) -> Batch:
    """What imitation needs of a batch (the demo store's may also carry its IL cache)."""
    return {"obs": batch["obs"], "action": batch["action"]}


def _states(store: TransitionRing) -> np.ndarray:
    frames = [np.arange(start, start + n) for start, n in store.episodes]
    idx = np.concatenate(frames) if frames else np.zeros(0, np.int64)
    return store.obs["state"][idx].copy()


def _keys(seg: Segment) -> dict[StepKey, int]:
    return {
        (seg.robot_id, seg.episode_id, int(step)): int(seq)
        for step, seq in zip(seg.steps, seg.seqs, strict=True)
    }
