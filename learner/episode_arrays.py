"""Episodes as columns: the one data type of offline (``tandem train``) and online learning.

``EpisodeArrays`` holds what was received or recorded of one episode, one row
per step, in the episode format's columns (``tandem.episodes.STEP_FIELDS``:
state, action, reward, terminated, truncated, intervention, mode and source
indices, step index, stream seq, times ...) plus camera images and the final
observation. It is filled from disk in one vectorised read (``from_stored``)
or, live, from ``StepColumns`` (rows appended as messages arrive, stacked once
at episode end).

``Segment`` is the replay-ready view: a gap-free run of T transitions with its
T + 1 observations. ``EpisodeArrays.segments`` cuts an episode at every missing
step; a run that reaches the episode's end uses the final observation (or, at
a terminal step recorded without one, repeats the last observation, which a
terminal transition never bootstraps from); any other run drops its last
action, whose outcome is unknown, and counts as truncated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tandem.episodes import CAM_PREFIX, MODES, SOURCES, STEP_FIELDS, Episode, load_episode
from tandem.messages import EpisodeKind, Outcome, StepRecord

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (robot_id, episode_id)

# End reasons that mean "this episode may still be receiving steps somewhere".
OPEN_REASONS = {None, "interrupted", "recorder_stopped", "learner_stopped"}


@dataclass
class Observation:
    """One observation: proprioception (S,) and camera images (H, W, 3)."""

    state: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Segment:
    """A contiguous run of transitions of one episode (no gap inside).

    ``states`` (T+1, S) float32 and ``images[cam]`` (T+1, H, W, 3) uint8 are the
    observations; ``actions`` (T, A), ``rewards`` (T,), ``intervention`` (T,)
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
        for start, end in runs(mask):
            obs = slice(start, end + 1)
            out.append(
                replace(
                    self,
                    states=self.states[obs],
                    images={k: v[obs] for k, v in self.images.items()},
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
class EpisodeArrays:
    """Everything received or recorded of one episode, as columns (see the module docstring).

    ``steps`` maps each ``STEP_FIELDS`` name to a [T, ...] array, rows in step
    order; ``images`` maps a camera to [T, H, W, 3] uint8. ``defect`` is the
    first structural problem found while assembling, (step, reason): a step
    whose cameras or shapes differ from the first step's, which is not stored.
    """

    robot_id: str
    episode_id: str
    kind: EpisodeKind
    steps: dict[str, np.ndarray]
    images: dict[str, np.ndarray] = field(default_factory=dict)
    final: Observation | None = None
    num_steps: int | None = None  # from the end event or the finished episode's metadata
    outcome: Outcome | None = None
    terminated: bool = False
    truncated: bool = False
    ended: bool = False
    end_reason: str | None = None
    defect: tuple[int, str] | None = None

    @classmethod
    def empty(cls, robot_id: str, episode_id: str, kind: EpisodeKind) -> EpisodeArrays:
        return cls(robot_id, episode_id, kind, empty_columns(0))

    @classmethod
    def from_stored(cls, episode: Episode) -> EpisodeArrays:
        """An episode loaded by ``tandem.episodes.load_episode`` (finished or partial)."""
        meta = episode.meta
        order = np.argsort(episode.steps["step"], kind="stable")
        final = None
        if "state" in episode.final:
            cams = {
                k[len(CAM_PREFIX) :]: v
                for k, v in episode.final.items()
                if k.startswith(CAM_PREFIX)
            }
            final = Observation(episode.final["state"].astype(np.float32), cams)
        ended = not episode.path.name.endswith(".partial") and meta.end_reason not in OPEN_REASONS
        return cls(
            robot_id=meta.robot_id, episode_id=meta.episode_id, kind=meta.kind,
            steps={k: v[order] for k, v in episode.steps.items()},
            images={k: v[order] for k, v in episode.images.items()},
            final=final, num_steps=meta.num_steps if final is not None or ended or meta.complete
            else None,
            outcome=meta.outcome, terminated=meta.terminated, truncated=meta.truncated,
            ended=ended, end_reason=meta.end_reason,
        )  # fmt: skip

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.steps["step"].shape[0])

    @property
    def step_index(self) -> np.ndarray:
        """[T] index of each row in the episode."""
        return self.steps["step"]

    @property
    def started_wall(self) -> float:
        """Wall time of the first step received (0 when none)."""
        return float(self.steps["t_wall"][0]) if len(self) else 0.0

    @property
    def success(self) -> bool:
        return self.outcome == Outcome.SUCCESS or bool(self.steps["success"].any())

    @property
    def episode_return(self) -> float:
        return float(self.steps["reward"].sum(dtype=np.float64))

    @property
    def human_steps(self) -> int:
        return int(self.steps["intervention"].sum())

    @property
    def discarded(self) -> bool:
        return self.outcome == Outcome.DISCARD

    def take(self, rows: np.ndarray | slice) -> EpisodeArrays:
        """The same episode restricted to ``rows`` (indices, mask or slice)."""
        return replace(
            self,
            steps={k: v[rows] for k, v in self.steps.items()},
            images={k: v[rows] for k, v in self.images.items()},
        )

    def has_gaps(self) -> bool:
        """True when a step before the end is missing."""
        steps = self.step_index
        expected = self.num_steps if self.num_steps is not None else (
            int(steps[-1]) + 1 if len(steps) else 0
        )  # fmt: skip
        return not np.array_equal(steps, np.arange(expected))

    # ------------------------------------------------------------------ checks
    def problem(self) -> str | None:
        """Why this episode cannot be learnt from (None when it can).

        Every step, and the final observation, must carry the same cameras with
        the same image shapes as the first step, and finite numbers.
        """
        s = self.steps
        bad_act = ~(np.isfinite(s["action"]).all(axis=1) & np.isfinite(s["reward"]))
        bad_state = ~np.isfinite(s["state"]).all(axis=1)
        bad = bad_act | bad_state
        row = int(np.argmax(bad)) if bad.any() else -1
        if row >= 0 and (self.defect is None or int(s["step"][row]) < self.defect[0]):
            what = "non-finite action or reward" if bad_act[row] else "non-finite state"
            return f"step {int(s['step'][row])}: {what}"
        if self.defect is not None:
            return f"step {self.defect[0]}: {self.defect[1]}"
        if self.final is not None and len(self):
            found = obs_problem(self.final.state, self.final.images, *self._reference())
            if found:
                return f"final observation: {found}"
        return None

    def _reference(self) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]]]:
        cams = {c: tuple(v.shape[1:]) for c, v in self.images.items()}
        return tuple(self.steps["state"].shape[1:]), cams

    # ------------------------------------------------------------------ transitions
    def segments(self) -> list[Segment]:
        """Cut the rows into gap-free segments (see the module docstring)."""
        steps = self.step_index
        breaks = np.flatnonzero(np.diff(steps) != 1) + 1
        out = []
        for rows in np.split(np.arange(len(steps)), breaks):
            seg = self._segment(rows) if len(rows) else None
            if seg is not None:
                out.append(seg)
        return out

    def _segment(self, rows: np.ndarray) -> Segment | None:
        s, last = self.steps, int(rows[-1])
        reaches_end = self.num_steps is not None and int(s["step"][last]) + 1 == self.num_steps
        states = s["state"][rows]
        images = {c: v[rows] for c, v in self.images.items()}
        acted, terminated = rows[:-1], False
        if reaches_end and self.final is not None:
            states = np.concatenate([states, self.final.state[None]])
            images = {c: np.concatenate([v, self.final.images[c][None]]) for c, v in images.items()}
            acted, terminated = rows, bool(s["terminated"][last] or self.terminated)
        elif reaches_end and bool(s["terminated"][last] or self.terminated):
            states = np.concatenate([states, states[-1:]])  # never bootstrapped from
            images = {c: np.concatenate([v, v[-1:]]) for c, v in images.items()}
            acted, terminated = rows, True
        if not len(acted):
            return None
        return Segment(
            robot_id=self.robot_id, episode_id=self.episode_id, kind=self.kind,
            states=states.astype(np.float32), images=images,
            actions=s["action"][acted].astype(np.float32),
            rewards=s["reward"][acted].astype(np.float32),
            intervention=s["intervention"][acted].astype(bool),
            seqs=s["seq"][acted].astype(np.int64), steps=s["step"][acted].astype(np.int32),
            terminated=terminated,
        )  # fmt: skip


def merge(a: EpisodeArrays, b: EpisodeArrays) -> EpisodeArrays:
    """The union of two views of one episode: rows deduplicated by step (``a``'s first),
    end info from the view that saw the end. Views whose shapes differ are not mixed:
    the ended one (else ``a``) is kept, with a warning."""
    ended_view = a if a.ended or not b.ended else b
    other = b if ended_view is a else a
    if len(a) and len(b) and not _compatible(a, b):
        log.warning("episode %s/%s: two views with different shapes; keeping one",
                    a.robot_id, a.episode_id)  # fmt: skip
        return ended_view
    views = [v for v in (a, b) if len(v)] or [a]
    steps = {k: np.concatenate([v.steps[k] for v in views]) for k in views[0].steps}
    images = {c: np.concatenate([v.images[c] for v in views]) for c in views[0].images}
    _, first = np.unique(steps["step"], return_index=True)  # sorted by step, a's rows first
    num_steps = ended_view.num_steps if ended_view.num_steps is not None else other.num_steps
    return replace(
        ended_view,
        steps={k: v[first] for k, v in steps.items()},
        images={c: v[first] for c, v in images.items()},
        final=ended_view.final or other.final,
        num_steps=num_steps,
        outcome=ended_view.outcome or other.outcome,
        ended=a.ended or b.ended,
        defect=a.defect or b.defect,
    )


def _compatible(a: EpisodeArrays, b: EpisodeArrays) -> bool:
    if set(a.steps) != set(b.steps) or set(a.images) != set(b.images):
        return False
    same_steps = all(a.steps[k].shape[1:] == b.steps[k].shape[1:] for k in a.steps)
    return same_steps and all(a.images[c].shape[1:] == b.images[c].shape[1:] for c in a.images)


class StepColumns:
    """Rows of one live episode appended message by message; ``arrays`` stacks them once.

    A step whose state or action shape, cameras or image shapes differ from the
    first step's is not stored: the first such step is remembered as ``defect``
    as ``defect`` (step, reason): the episode is rejected as malformed when it ends.
    """

    def __init__(self) -> None:
        self.rows: dict[str, list[object]] = {name: [] for name in STEP_FIELDS}
        self.cams: dict[str, list[np.ndarray]] = {}
        self.defect: tuple[int, str] | None = None
        self._ref: tuple[tuple[int, ...], tuple[int, ...], dict[str, tuple[int, ...]]] | None = None

    def __len__(self) -> int:
        return len(self.rows["step"])

    def append(self, rec: StepRecord, images: dict[str, np.ndarray]) -> None:
        state = np.asarray(rec.state, np.float32)
        action = np.asarray(rec.action, np.float32)
        if self._ref is None:
            self._ref = (state.shape, action.shape, {c: np.shape(v) for c, v in images.items()})
            self.cams = {c: [] for c in images}
        problem = self._problem(state, action, images)
        if problem is not None:
            if self.defect is None:
                self.defect = (rec.step, problem)
            return
        nan = np.full(len(action), np.nan, np.float32)
        row = {
            "state": state, "action": action, "reward": rec.reward, "success": rec.success,
            "policy_action": nan if rec.policy_action is None else rec.policy_action,
            "human_action": nan if rec.human_action is None else rec.human_action,
            "terminated": rec.terminated, "truncated": rec.truncated,
            "intervention": rec.intervention, "action_source": SOURCES.index(rec.action_source),
            "mode": MODES.index(rec.mode), "step": rec.step, "seq": rec.seq,
            "t_obs": rec.t_obs, "t_wall": rec.t_wall,
        }  # fmt: skip
        for name, value in row.items():
            self.rows[name].append(value)
        for cam, frames in self.cams.items():
            frames.append(images[cam])

    def _problem(
        self, state: np.ndarray, action: np.ndarray, images: dict[str, np.ndarray]
    ) -> str | None:
        assert self._ref is not None
        state_shape, action_shape, cams = self._ref
        if action.shape != action_shape:
            return f"action shape {action.shape}, expected {action_shape}"
        if state.shape != state_shape:
            return f"state shape {state.shape}, expected {state_shape}"
        return cameras_problem(images, cams)

    def columns(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(step columns, camera images), each stacked once."""
        if not len(self):
            return empty_columns(0), {}
        steps = {name: np.asarray(v, STEP_FIELDS[name][0]) for name, v in self.rows.items()}
        return steps, {c: np.stack(frames) for c, frames in self.cams.items()}


def empty_columns(state_dim: int) -> dict[str, np.ndarray]:
    """Zero-row step columns."""
    out = {}
    for name, (dtype, shape) in STEP_FIELDS.items():
        out[name] = np.zeros((0, *((state_dim,) if shape is None else shape)), dtype)
    return out


def obs_problem(
    state: np.ndarray,
    images: dict[str, np.ndarray],
    state_shape: tuple[int, ...],
    cams: dict[str, tuple[int, ...]],
) -> str | None:
    """Why one observation does not match the episode's shapes (None when it does)."""
    if state.shape != state_shape:
        return f"state shape {state.shape}, expected {state_shape}"
    if not np.all(np.isfinite(state)):
        return "non-finite state"
    return cameras_problem(images, cams)


def cameras_problem(images: dict[str, np.ndarray], cams: dict[str, tuple[int, ...]]) -> str | None:
    if set(images) != set(cams):
        missing, extra = sorted(set(cams) - set(images)), sorted(set(images) - set(cams))
        return f"cameras differ from the first step (missing {missing}, extra {extra})"
    for cam, shape in cams.items():
        if np.shape(images[cam]) != shape:
            return f"camera {cam!r} image shape {np.shape(images[cam])}, expected {shape}"
    return None


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the true runs of a boolean vector."""
    flags = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(flags.astype(np.int8)))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def load_arrays(path: Path) -> EpisodeArrays:
    """Read one episode directory (finished or partial) in one vectorised read."""
    return EpisodeArrays.from_stored(load_episode(path))
