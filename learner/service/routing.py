"""Route a finished episode to the learner's data by its source (DESIGN.md, learning data).

* demonstration episodes (teleop) kept by the operator -> demo data (imitation
  data and the never-evicted demo part of the replay);
* rollout episodes -> the online RL buffer, every step, human-driven ones included;
* intervention segments (human actions during a rollout) -> imitation data as
  well (HG-DAgger);
* discarded episodes -> nowhere;
* malformed episodes (``EpisodeArrays.problem``) -> nowhere, with the reason.

RLIF (optional): the step just before each takeover gets ``rlif_penalty`` added
to its reward, marking the state the human judged the policy was failing in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from learner.episode_arrays import EpisodeArrays, Segment
from tandem.messages import EpisodeKind


@dataclass
class Routed:
    """Where one episode's segments go."""

    demo: list[Segment] = field(default_factory=list)
    online: list[Segment] = field(default_factory=list)
    intervention: list[Segment] = field(default_factory=list)
    dropped_reason: str | None = None
    malformed: bool = False  # rejected: inconsistent cameras, shapes or non-finite numbers

    @property
    def num_transitions(self) -> int:
        return sum(len(s) for s in self.demo + self.online)


def route(
    episode: EpisodeArrays, *, demos_require_success: bool, rlif_penalty: float | None
) -> Routed:
    """Decide where ``episode``'s transitions go (see the module docstring)."""
    if episode.discarded:
        return Routed(dropped_reason="discarded")
    problem = episode.problem()
    if problem is not None:
        return Routed(dropped_reason=f"malformed: {problem}", malformed=True)
    segments = episode.segments()
    if not segments:
        return Routed(dropped_reason="no transitions")
    if episode.kind == EpisodeKind.DEMO:
        if episode.success or not demos_require_success:
            return Routed(demo=segments)
        return Routed(online=segments)  # an unsuccessful demo is still experience
    if rlif_penalty is not None:
        segments = [apply_rlif(s, rlif_penalty) for s in segments]
    interventions = [sub for s in segments for sub in s.select(s.intervention)]
    return Routed(online=segments, intervention=interventions)


def apply_rlif(segment: Segment, penalty: float) -> Segment:
    """Add ``penalty`` to the reward of each policy step directly followed by a human step."""
    flags = segment.intervention
    before_takeover = np.zeros_like(flags)
    before_takeover[:-1] = ~flags[:-1] & flags[1:]
    rewards = segment.rewards + penalty * before_takeover.astype(np.float32)
    return replace(segment, rewards=rewards)
