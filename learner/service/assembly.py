"""Rebuild episodes and transitions from the bridges' step and episode streams.

Pure (no sockets, no files): the ingest thread feeds it decoded messages and
gets back finished episodes. Steps are kept per ``(robot_id, episode_id)`` so
robots and episodes never mix. An episode is cut into *segments* at every
missing step: a transition never spans a gap. A segment that ends at a gap (or
whose end was never seen) is a time-limit-like truncation: its last
observation is kept for bootstrapping and the action taken there is dropped,
since its outcome is unknown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from tandem.episodes import StepData
from tandem.messages import EpisodeEvent, EpisodeKind, Outcome, StepRecord

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (robot_id, episode_id)


@dataclass
class Segment:
    """A contiguous run of transitions of one episode (no gap inside).

    ``states`` (T+1, S) float32 and ``images[cam]`` (T+1, H, W, 3) uint8 are the
    observations; ``actions`` (T, 7), ``rewards`` (T,), ``intervention`` (T,)
    (a human drove), ``seqs`` (T,) (step-stream seq) and ``steps`` (T,) (index
    in the episode) describe the T transitions. ``terminated`` means the last
    transition ended the task; otherwise the last observation is bootstrapped.
    """

    robot_id: str
    episode_id: str
    kind: EpisodeKind
    states: np.ndarray
    images: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    intervention: np.ndarray
    seqs: np.ndarray
    steps: np.ndarray
    terminated: bool

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def truncated(self) -> bool:
        return not self.terminated

    def select(self, mask: np.ndarray) -> list[Segment]:
        """Sub-segments made of the contiguous runs of transitions where ``mask`` is true.

        Each run ends with the observation after its last transition, so it is
        a valid segment; it counts as truncated unless it reaches this segment's
        terminal transition.
        """
        out = []
        for start, end in _runs(mask):
            out.append(
                Segment(
                    robot_id=self.robot_id,
                    episode_id=self.episode_id,
                    kind=self.kind,
                    states=self.states[start : end + 1],
                    images={k: v[start : end + 1] for k, v in self.images.items()},
                    actions=self.actions[start:end],
                    rewards=self.rewards[start:end],
                    intervention=self.intervention[start:end],
                    seqs=self.seqs[start:end],
                    steps=self.steps[start:end],
                    terminated=self.terminated and end == len(self),
                )
            )
        return out


@dataclass
class Observation:
    """One observation: proprioception (S,) and camera images (H, W, 3)."""

    state: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class AssembledEpisode:
    """Everything received of one episode, ready to be cut into segments."""

    robot_id: str
    episode_id: str
    kind: EpisodeKind
    steps: list[StepData] = field(default_factory=list)
    final: Observation | None = None
    num_steps: int | None = None  # from the end event
    outcome: Outcome | None = None
    terminated: bool = False
    truncated: bool = False
    ended: bool = False
    end_reason: str | None = None

    @property
    def success(self) -> bool:
        return self.outcome == Outcome.SUCCESS or any(s.success for s in self.steps)

    @property
    def episode_return(self) -> float:
        return float(sum(s.reward for s in self.steps))

    @property
    def discarded(self) -> bool:
        return self.outcome == Outcome.DISCARD

    def problem(self) -> str | None:
        """Why this episode cannot be learnt from (None when it can).

        Every step, and the final observation, must carry the same cameras with
        the same image shapes as the first step, states and actions of one shape,
        and finite numbers. ``segments`` relies on it.
        """
        if not self.steps:
            return None
        ref = self.steps[0]
        ref_cams = {c: np.shape(img) for c, img in ref.images.items()}
        for s in self.steps:
            found = _step_problem(s, ref.state.shape, ref.action.shape, ref_cams)
            if found:
                return f"step {s.step}: {found}"
        if self.final is not None:
            found = _obs_problem(self.final.state, self.final.images, ref.state.shape, ref_cams)
            if found:
                return f"final observation: {found}"
        return None

    def segments(self) -> list[Segment]:
        """Cut the received steps into gap-free segments (see the module docstring)."""
        ordered = sorted(self.steps, key=lambda s: s.step)
        runs: list[list[StepData]] = []
        for s in ordered:
            if runs and s.step == runs[-1][-1].step + 1:
                runs[-1].append(s)
            else:
                runs.append([s])
        out = []
        for run in runs:
            seg = self._segment(run)
            if seg is not None:
                out.append(seg)
        return out

    def _segment(self, run: list[StepData]) -> Segment | None:
        last = run[-1]
        if self.final is not None and last.step + 1 == self.num_steps:
            obs = [Observation(s.state, s.images) for s in run] + [self.final]
            acted = run
            terminated = bool(last.terminated or self.terminated)
        else:
            obs = [Observation(s.state, s.images) for s in run]
            acted = run[:-1]
            terminated = False
        if not acted:
            return None
        cams = sorted(run[0].images)
        return Segment(
            robot_id=self.robot_id,
            episode_id=self.episode_id,
            kind=self.kind,
            states=np.stack([o.state for o in obs]).astype(np.float32),
            images={c: np.stack([o.images[c] for o in obs]) for c in cams},
            actions=np.stack([s.action for s in acted]).astype(np.float32),
            rewards=np.asarray([s.reward for s in acted], np.float32),
            intervention=np.asarray([s.intervention for s in acted], bool),
            seqs=np.asarray([s.seq for s in acted], np.int64),
            steps=np.asarray([s.step for s in acted], np.int32),
            terminated=terminated,
        )


@dataclass
class AssemblyStats:
    steps: int = 0
    late_steps: int = 0
    episodes_finished: int = 0
    episodes_superseded: int = 0
    episodes_discarded: int = 0


class EpisodeAssembler:
    """Collects steps per (robot, episode) and hands back finished episodes.

    ``on_step`` and ``on_event`` return the episodes they finished (an episode
    also finishes when its robot starts another one without an end event).
    A step of an episode that already ended, or repeating a step index already
    received, is *late* and dropped. ``seed`` restores an episode that was
    open when the learner stopped, so its remaining live steps join it.
    """

    def __init__(self) -> None:
        self.open: dict[Key, AssembledEpisode] = {}
        self._closed: set[Key] = set()
        self.stats = AssemblyStats()

    def seed(self, episode: AssembledEpisode) -> None:
        self.open[(episode.robot_id, episode.episode_id)] = episode

    def mark_closed(self, robot_id: str, episode_id: str) -> None:
        """Remember an episode finished elsewhere (e.g. loaded at resume): its steps are late."""
        self._closed.add((robot_id, episode_id))

    def on_step(self, rec: StepRecord, images: dict[str, np.ndarray]) -> list[AssembledEpisode]:
        key = (rec.robot_id, rec.episode_id)
        if key in self._closed:
            self.stats.late_steps += 1
            return []
        finished = [] if key in self.open else self._supersede(rec.robot_id, rec.episode_id)
        ep = self.open.setdefault(
            key, AssembledEpisode(rec.robot_id, rec.episode_id, rec.episode_kind)
        )
        if ep.steps and rec.step <= ep.steps[-1].step:  # repeated or out of order
            self.stats.late_steps += 1
            return finished
        ep.steps.append(StepData.from_record(rec, images))
        self.stats.steps += 1
        return finished

    def on_event(self, msg: EpisodeEvent, images: dict[str, np.ndarray]) -> list[AssembledEpisode]:
        key = (msg.robot_id, msg.episode_id)
        if msg.event == "start":
            if key in self._closed or key in self.open:
                return []
            finished = self._supersede(msg.robot_id, msg.episode_id)
            self.open[key] = AssembledEpisode(msg.robot_id, msg.episode_id, msg.episode_kind)
            return finished
        if msg.event == "label":
            log.info("label %s for finished episode %s/%s", msg.outcome, *key)
            return []
        ep = self.open.pop(key, None)
        if ep is None:
            if key not in self._closed:
                log.warning("end of episode %s/%s that sent nothing", *key)
            return []
        self._end(ep, msg, images)
        return [ep]

    def close_all(self) -> list[AssembledEpisode]:
        """Finish every open episode as incomplete (e.g. at shutdown)."""
        out = list(self.open.values())
        self.open.clear()
        for ep in out:
            self._closed.add((ep.robot_id, ep.episode_id))
        return out

    def _end(self, ep: AssembledEpisode, msg: EpisodeEvent, images: dict[str, np.ndarray]) -> None:
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

    def _supersede(self, robot_id: str, episode_id: str) -> list[AssembledEpisode]:
        stale = [k for k in self.open if k[0] == robot_id and k[1] != episode_id]
        out = []
        for key in stale:
            ep = self.open.pop(key)
            ep.end_reason = "superseded"
            self._closed.add(key)
            self.stats.episodes_superseded += 1
            log.warning("episode %s/%s: no end event before the next episode", *key)
            out.append(ep)
        return out


def _step_problem(
    s: StepData,
    state_shape: tuple[int, ...],
    action_shape: tuple[int, ...],
    cams: dict[str, tuple[int, ...]],
) -> str | None:
    if s.action.shape != action_shape:
        return f"action shape {s.action.shape}, expected {action_shape}"
    if not (np.all(np.isfinite(s.action)) and np.isfinite(s.reward)):
        return "non-finite action or reward"
    return _obs_problem(s.state, s.images, state_shape, cams)


def _obs_problem(
    state: np.ndarray,
    images: dict[str, np.ndarray],
    state_shape: tuple[int, ...],
    cams: dict[str, tuple[int, ...]],
) -> str | None:
    if state.shape != state_shape:
        return f"state shape {state.shape}, expected {state_shape}"
    if not np.all(np.isfinite(state)):
        return "non-finite state"
    if set(images) != set(cams):
        missing, extra = sorted(set(cams) - set(images)), sorted(set(images) - set(cams))
        return f"cameras differ from the first step (missing {missing}, extra {extra})"
    for cam, shape in cams.items():
        if np.shape(images[cam]) != shape:
            return f"camera {cam!r} image shape {np.shape(images[cam])}, expected {shape}"
    return None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the true runs of a boolean vector."""
    runs, start = [], None
    for i, flag in enumerate(mask.tolist()):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(mask)))
    return runs
