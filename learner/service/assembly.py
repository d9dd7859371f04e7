"""Rebuild episodes from the bridges' step and episode streams.

Pure (no sockets, no files): the ingest thread feeds it decoded messages and
gets back finished episodes as ``EpisodeArrays``. Steps are kept per
``(robot_id, episode_id)`` so robots and episodes never mix; each step message
appends one row (``StepColumns``), and the rows are stacked once, when the
episode ends. ``EpisodeArrays.segments`` then cuts it at every missing step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from learner.episode_arrays import EpisodeArrays, Key, Observation, StepColumns, merge
from tandem.messages import EpisodeEvent, EpisodeKind, StepRecord

log = logging.getLogger(__name__)


@dataclass
class AssemblyStats:
    steps: int = 0
    late_steps: int = 0
    episodes_finished: int = 0
    episodes_superseded: int = 0
    episodes_discarded: int = 0


class OpenEpisode:
    """An episode still receiving steps: a seeded prefix (resume) plus live rows."""

    def __init__(
        self, robot_id: str, episode_id: str, kind: EpisodeKind, prefix: EpisodeArrays | None = None
    ) -> None:
        self.robot_id, self.episode_id, self.kind = robot_id, episode_id, kind
        self.prefix = prefix
        self.rows = StepColumns()
        self.last_step = int(prefix.step_index[-1]) if prefix is not None and len(prefix) else -1

    def append(self, rec: StepRecord, images: dict[str, np.ndarray]) -> bool:
        """Add one step; False (and nothing added) when it repeats or precedes one received."""
        if rec.step <= self.last_step:
            return False
        self.rows.append(rec, images)
        self.last_step = rec.step
        return True

    def arrays(self) -> EpisodeArrays:
        """Everything received so far, stacked once (not ended)."""
        steps, images = self.rows.columns()
        live = EpisodeArrays(
            self.robot_id, self.episode_id, self.kind, steps, images, defect=self.rows.defect
        )
        return live if self.prefix is None else merge(self.prefix, live)


class EpisodeAssembler:
    """Collects steps per (robot, episode) and hands back finished episodes.

    ``on_step`` and ``on_event`` return the episodes they finished (an episode
    also finishes when its robot starts another one without an end event).
    A step of an episode that already ended, or repeating a step index already
    received, is *late* and dropped. ``seed`` restores an episode that was
    open when the learner stopped, so its remaining live steps join it.
    """

    def __init__(self) -> None:
        self.open: dict[Key, OpenEpisode] = {}
        self._closed: set[Key] = set()
        self.stats = AssemblyStats()

    def seed(self, episode: EpisodeArrays) -> None:
        key = (episode.robot_id, episode.episode_id)
        self.open[key] = OpenEpisode(*key, episode.kind, prefix=episode)

    def mark_closed(self, robot_id: str, episode_id: str) -> None:
        """Remember an episode finished elsewhere (e.g. loaded at resume): its steps are late."""
        self._closed.add((robot_id, episode_id))

    def on_step(self, rec: StepRecord, images: dict[str, np.ndarray]) -> list[EpisodeArrays]:
        key = (rec.robot_id, rec.episode_id)
        if key in self._closed:
            self.stats.late_steps += 1
            return []
        finished = [] if key in self.open else self._supersede(rec.robot_id, rec.episode_id)
        ep = self.open.get(key)
        if ep is None:
            ep = self.open[key] = OpenEpisode(rec.robot_id, rec.episode_id, rec.episode_kind)
        if not ep.append(rec, images):  # repeated or out of order
            self.stats.late_steps += 1
            return finished
        self.stats.steps += 1
        return finished

    def on_event(self, msg: EpisodeEvent, images: dict[str, np.ndarray]) -> list[EpisodeArrays]:
        key = (msg.robot_id, msg.episode_id)
        if msg.event == "start":
            if key in self._closed or key in self.open:
                return []
            finished = self._supersede(msg.robot_id, msg.episode_id)
            self.open[key] = OpenEpisode(msg.robot_id, msg.episode_id, msg.episode_kind)
            return finished
        if msg.event == "label":
            log.info("label %s for finished episode %s/%s", msg.outcome, *key)
            return []
        ep = self.open.pop(key, None)
        if ep is None:
            if key not in self._closed:
                log.warning("end of episode %s/%s that sent nothing", *key)
            return []
        return [self._end(ep.arrays(), msg, images)]

    def close_all(self) -> list[EpisodeArrays]:
        """Finish every open episode as incomplete (e.g. at shutdown)."""
        out = [ep.arrays() for ep in self.open.values()]
        self._closed.update(self.open)
        self.open.clear()
        return out

    def _end(
        self, ep: EpisodeArrays, msg: EpisodeEvent, images: dict[str, np.ndarray]
    ) -> EpisodeArrays:
        ep.ended = True
        ep.end_reason = msg.reason
        ep.num_steps = msg.num_steps
        ep.outcome = msg.outcome
        ep.terminated = msg.terminated
        ep.truncated = msg.truncated
        if msg.final_state is not None:
            ep.final = Observation(np.asarray(msg.final_state, np.float32), dict(images))
        self._closed.add((ep.robot_id, ep.episode_id))
        self.stats.episodes_finished += 1
        if ep.discarded:
            self.stats.episodes_discarded += 1
        return ep

    def _supersede(self, robot_id: str, episode_id: str) -> list[EpisodeArrays]:
        stale = [k for k in self.open if k[0] == robot_id and k[1] != episode_id]
        out = []
        for key in stale:
            ep = self.open.pop(key).arrays()
            ep.end_reason = "superseded"
            self._closed.add(key)
            self.stats.episodes_superseded += 1
            log.warning("episode %s/%s: no end event before the next episode", *key)
            out.append(ep)
        return out
