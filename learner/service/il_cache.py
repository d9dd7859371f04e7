"""The replay's IL proposal cache in the online learner, recomputed off-thread.

The TD target's IL proposal a_IL(s') comes from the replay's cache
(``TransitionRing.set_il_proposal``) instead of an IL forward pass on every sampled batch.
When the IL policy changes (pre-training, a restore, an HG-DAgger refit swapped in), the
trainer drops the cache at once, so batches go back to computing a_IL with the new policy
and the targets stay exact, and starts an ``ILCacheJob``: a thread computes the new policy's
a_IL of every stored frame from a snapshot of the episode lists, reading the rings without the
data lock. The trainer installs the result between two updates (``install``), after computing
again the episodes that arrived meanwhile (their frames may have been read half-written).
"""

from __future__ import annotations

import numpy as np

from learner.replay import ILProposal, TransitionRing
from learner.service.data import ServiceData
from learner.service.jobs import Job


class ILCacheJob(Job):
    """One background computation of the cache of IL version ``version`` (module docstring)."""

    name = "il-cache"

    def __init__(self, data: ServiceData, propose: ILProposal, version: int) -> None:
        super().__init__()
        self.data, self.propose, self.version = data, propose, version
        self.frames = 0
        self._caches: list[tuple[TransitionRing, np.ndarray, int]] = []

    def install(self) -> None:
        """Swap the computed caches in (trainer thread, once ``done`` without ``error``)."""
        if not self.done or self.error is not None:
            raise RuntimeError("install needs a finished job without error")
        with self.data.lock:
            for ring, cache, adds in self._caches:
                ring.install_il_cache(self.propose, self.version, cache, adds)

    def work(self) -> None:
        with self.data.lock:
            rings = (self.data.demos, self.data.online)
            snapshots = [(ring, list(ring.episodes), ring.adds) for ring in rings]
        for ring, episodes, adds in snapshots:
            self._caches.append((ring, ring.compute_il_cache(self.propose, episodes), adds))
            self.frames += sum(n for _, n in episodes)
