"""The episode format on disk, written by the recorder and read by the learner.

Layout under a root directory (normally ``<data_dir>/episodes``)::

    <robot_id>/<episode_id>.partial/   an episode being written
    <robot_id>/<episode_id>/           a finished episode (never rewritten)
        meta.json                      EpisodeMeta
        chunk_000000.npz, ...          consecutive runs of steps (see STEP_FIELDS)
        final.npz                      observation after the last action (optional)

Every file is written to a temporary name, fsynced and renamed, so a crash at
any moment leaves whole chunks only: at most the steps since the last flush
are lost. A finished episode is moved from ``.partial`` to its final name by
one atomic rename. ``recover_partials`` finalises what a crash left behind as
incomplete. Arrays are plain ``.npz`` loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tandem.messages import ACTION_DIM, ActionSource, ControlMode, EpisodeKind, Outcome, StepRecord

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial"
CAM_PREFIX = "cam_"
SOURCES = list(ActionSource)
MODES = list(ControlMode)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Per-step arrays of a chunk: name -> (dtype, shape after the step axis or None = state_dim).
STEP_FIELDS: dict[str, tuple[str, tuple[int, ...] | None]] = {
    "state": ("float32", None),
    "action": ("float32", (ACTION_DIM,)),
    "policy_action": ("float32", (ACTION_DIM,)),  # NaN where the policy proposed nothing
    "human_action": ("float32", (ACTION_DIM,)),  # NaN where no human acted
    "reward": ("float32", ()),
    "success": ("bool", ()),
    "terminated": ("bool", ()),
    "truncated": ("bool", ()),
    "intervention": ("bool", ()),
    "action_source": ("uint8", ()),  # index into SOURCES
    "mode": ("uint8", ()),  # index into MODES
    "step": ("int32", ()),
    "seq": ("int64", ()),  # sender's step-stream seq, -1 when not from a stream
    "t_obs": ("float64", ()),
    "t_wall": ("float64", ()),
}


class EpisodeFormatError(ValueError):
    """An episode directory is missing, malformed or inconsistent."""


class EpisodeMeta(BaseModel):
    """Metadata of one episode (``meta.json``)."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    robot_id: str
    episode_id: str
    kind: EpisodeKind
    cameras: list[str] = Field(default_factory=list)
    image_shape: list[int] | None = Field(None, description="H, W, C of every camera image.")
    state_dim: int = Field(ge=0)
    task: str | None = Field(None, description="Task or robot spec, e.g. sim:lift.")
    operator: str | None = None
    started_wall: float = Field(default_factory=time.time)
    ended_wall: float | None = None
    num_steps: int = 0
    outcome: Outcome | None = None
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    episode_return: float = 0.0
    interventions: list[tuple[int, int]] = Field(
        default_factory=list, description="Human-driven spans [start, end) in step indices."
    )
    end_reason: str | None = None
    complete: bool = False
    notes: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)


@dataclass
class StepData:
    """One step as stored: arrays are per-step (no leading axis)."""

    state: np.ndarray
    action: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)
    policy_action: np.ndarray | None = None
    human_action: np.ndarray | None = None
    reward: float = 0.0
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    intervention: bool = False
    action_source: ActionSource = ActionSource.POLICY
    mode: ControlMode = ControlMode.ROLLOUT
    step: int = 0
    seq: int = -1
    t_obs: float = 0.0
    t_wall: float = 0.0

    @classmethod
    def from_record(cls, rec: StepRecord, images: dict[str, np.ndarray]) -> StepData:
        def vec(values: list[float] | None) -> np.ndarray | None:
            return None if values is None else np.asarray(values, np.float32)

        return cls(
            state=np.asarray(rec.state, np.float32),
            action=np.asarray(rec.action, np.float32),
            images=images,
            policy_action=vec(rec.policy_action),
            human_action=vec(rec.human_action),
            reward=rec.reward,
            success=rec.success,
            terminated=rec.terminated,
            truncated=rec.truncated,
            intervention=rec.intervention,
            action_source=rec.action_source,
            mode=rec.mode,
            step=rec.step,
            seq=rec.seq,
            t_obs=rec.t_obs,
            t_wall=rec.t_wall,
        )


def check_name(name: str, what: str) -> str:
    """Robot and episode ids become path components: allow a safe subset only."""
    if not _SAFE_NAME.match(name):
        raise EpisodeFormatError(f"{what} {name!r} must match {_SAFE_NAME.pattern}")
    return name


class EpisodeWriter:
    """Writes one episode incrementally; ``flush`` at least every ``flush_every_s``."""

    def __init__(self, root: str | Path, meta: EpisodeMeta, flush_every_s: float = 1.0) -> None:
        check_name(meta.robot_id, "robot id")
        check_name(meta.episode_id, "episode id")
        self.meta = meta.model_copy()
        self.final_dir = Path(root) / meta.robot_id / meta.episode_id
        self.dir = self.final_dir.with_name(meta.episode_id + PARTIAL_SUFFIX)
        if self.final_dir.exists() or self.dir.exists():
            raise EpisodeFormatError(f"episode {meta.robot_id}/{meta.episode_id} already exists")
        self.dir.mkdir(parents=True)
        self._flush_every = flush_every_s
        self._pending: list[StepData] = []
        self._chunks = 0
        self._last_flush = time.monotonic()
        self._span_start: int | None = None
        _write_json(self.dir / "meta.json", self.meta.model_dump(mode="json"))

    @property
    def num_steps(self) -> int:
        return self.meta.num_steps

    def append(self, step: StepData) -> None:
        """Queue one step; flushes when the flush interval has passed."""
        self._validate(step)
        self._track_interventions(step)
        self.meta.num_steps += 1
        self.meta.episode_return += float(step.reward)
        self.meta.success = self.meta.success or step.success
        self._pending.append(step)
        if time.monotonic() - self._last_flush >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the queued steps as one chunk (atomic) and update meta.json."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        arrays = _stack(self._pending, self.meta)
        _write_npz(self.dir / f"chunk_{self._chunks:06d}.npz", arrays)
        self._chunks += 1
        self._pending.clear()
        _write_json(self.dir / "meta.json", self._meta_snapshot().model_dump(mode="json"))

    def finish(self, final_obs: dict[str, np.ndarray] | None = None, **updates: Any) -> Path:
        """Flush, write the final observation and metadata, and rename into place."""
        self.flush()
        if final_obs:
            _write_npz(self.dir / "final.npz", final_obs)
        merged = {**self._meta_snapshot().model_dump(), "complete": True, **updates}
        self.meta = EpisodeMeta.model_validate(merged)
        if self.meta.ended_wall is None:
            self.meta.ended_wall = time.time()
        _write_json(self.dir / "meta.json", self.meta.model_dump(mode="json"))
        os.replace(self.dir, self.final_dir)
        _fsync_dir(self.final_dir.parent)
        return self.final_dir

    def _meta_snapshot(self) -> EpisodeMeta:
        spans = list(self.meta.interventions)
        if self._span_start is not None:
            spans.append((self._span_start, self.meta.num_steps))
        return self.meta.model_copy(update={"interventions": spans})

    def _track_interventions(self, step: StepData) -> None:
        index = self.meta.num_steps
        if step.intervention and self._span_start is None:
            self._span_start = index
        elif not step.intervention and self._span_start is not None:
            self.meta.interventions.append((self._span_start, index))
            self._span_start = None

    def _validate(self, step: StepData) -> None:
        if step.state.shape != (self.meta.state_dim,):
            raise EpisodeFormatError(
                f"state shape {step.state.shape} != ({self.meta.state_dim},) of this episode"
            )
        if set(step.images) != set(self.meta.cameras):
            raise EpisodeFormatError(
                f"step cameras {sorted(step.images)} != episode cameras {self.meta.cameras}"
            )
        shape = tuple(self.meta.image_shape or ())
        for name, image in step.images.items():
            if image.shape != shape or image.dtype != np.uint8:
                raise EpisodeFormatError(
                    f"camera {name!r}: image {image.dtype} {image.shape} != uint8 {shape}"
                )


@dataclass
class Episode:
    """A loaded episode: metadata, per-step arrays, camera images and final observation."""

    path: Path
    meta: EpisodeMeta
    steps: dict[str, np.ndarray]
    images: dict[str, np.ndarray]
    final: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.steps["action"].shape[0])


def load_episode(path: str | Path, *, images: bool = True) -> Episode:
    """Load an episode directory (finished or partial); ``images=False`` skips cameras."""
    path = Path(path)
    meta = read_meta(path)
    chunks = sorted(path.glob("chunk_*.npz"))
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in chunks:
        for name, array in _read_npz(chunk).items():
            if images or not name.startswith(CAM_PREFIX):
                parts.setdefault(name, []).append(array)
    steps = {name: np.concatenate(arrays) for name, arrays in parts.items()}
    if not steps:
        steps = _empty_steps(meta)
    cams = {k[len(CAM_PREFIX) :]: steps.pop(k) for k in list(steps) if k.startswith(CAM_PREFIX)}
    final_path = path / "final.npz"
    final = _read_npz(final_path) if final_path.exists() else {}
    episode = Episode(path, meta, steps, cams, final)
    _check_lengths(episode)
    return episode


def read_meta(path: str | Path) -> EpisodeMeta:
    meta_path = Path(path) / "meta.json"
    try:
        return EpisodeMeta.model_validate_json(meta_path.read_bytes())
    except FileNotFoundError:
        raise EpisodeFormatError(f"{path}: no meta.json (not an episode directory)") from None
    except ValueError as exc:
        raise EpisodeFormatError(f"{meta_path}: invalid metadata: {exc}") from None


def list_episodes(root: str | Path, *, include_partial: bool = False) -> list[Path]:
    """Episode directories under ``root`` sorted by start time (oldest first)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("*/*"):
        is_partial = path.name.endswith(PARTIAL_SUFFIX)
        if path.is_dir() and (path / "meta.json").exists() and (include_partial or not is_partial):
            found.append(path)
    return sorted(found, key=lambda p: (read_meta(p).started_wall, p.name))


def recover_partials(root: str | Path) -> list[Path]:
    """Finalise every ``.partial`` episode a crash left behind, marked incomplete.

    Whole chunks are kept; stray temporary files are removed. Finished
    episodes are not touched. Returns the recovered episode directories.
    """
    recovered = []
    for partial in sorted(Path(root).glob(f"*/*{PARTIAL_SUFFIX}")):
        for tmp in partial.glob("*.tmp"):
            tmp.unlink()
        try:
            episode = load_episode(partial, images=False)
        except EpisodeFormatError as exc:
            log.error("cannot recover %s: %s", partial, exc)
            continue
        meta = _recovered_meta(episode)
        _write_json(partial / "meta.json", meta.model_dump(mode="json"))
        target = partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])
        os.replace(partial, target)
        log.warning("recovered interrupted episode %s with %d steps", target, meta.num_steps)
        recovered.append(target)
    return recovered


def _recovered_meta(episode: Episode) -> EpisodeMeta:
    steps = episode.steps
    n = len(episode)
    return episode.meta.model_copy(
        update={
            "num_steps": n,
            "episode_return": float(steps["reward"].sum()) if n else 0.0,
            "success": bool(steps["success"].any()) if n else False,
            "interventions": _spans(steps["intervention"]) if n else [],
            "complete": False,
            "end_reason": "interrupted",
            "ended_wall": _last_time(steps["t_wall"], episode.meta.started_wall),
        }
    )


def _last_time(t_wall: np.ndarray, default: float) -> float:
    return float(t_wall[-1]) if len(t_wall) and t_wall[-1] > 0 else default


def _spans(flags: np.ndarray) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, flag in enumerate(flags.tolist()):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(flags)))
    return spans


def _stack(steps: list[StepData], meta: EpisodeMeta) -> dict[str, np.ndarray]:
    nan = np.full(ACTION_DIM, np.nan, np.float32)
    columns: dict[str, list[Any]] = {name: [] for name in STEP_FIELDS}
    for s in steps:
        row = {
            **{k: getattr(s, k) for k in STEP_FIELDS},
            "policy_action": nan if s.policy_action is None else s.policy_action,
            "human_action": nan if s.human_action is None else s.human_action,
            "action_source": SOURCES.index(ActionSource(s.action_source)),
            "mode": MODES.index(ControlMode(s.mode)),
        }
        for name in STEP_FIELDS:
            columns[name].append(row[name])
    arrays = {name: np.asarray(columns[name], STEP_FIELDS[name][0]) for name in STEP_FIELDS}
    for cam in meta.cameras:
        arrays[CAM_PREFIX + cam] = np.stack([s.images[cam] for s in steps])
    return arrays


def _empty_steps(meta: EpisodeMeta) -> dict[str, np.ndarray]:
    empty = {}
    for name, (dtype, shape) in STEP_FIELDS.items():
        tail = (meta.state_dim,) if shape is None else shape
        empty[name] = np.zeros((0, *tail), dtype)
    for cam in meta.cameras:
        empty[CAM_PREFIX + cam] = np.zeros((0, *(meta.image_shape or (0, 0, 3))), np.uint8)
    return empty


def _check_lengths(episode: Episode) -> None:
    n = len(episode)
    arrays = {**episode.steps, **{CAM_PREFIX + k: v for k, v in episode.images.items()}}
    for name, array in arrays.items():
        if array.shape[0] != n:
            raise EpisodeFormatError(f"{episode.path}: {name} has {array.shape[0]} steps, not {n}")
    missing = set(STEP_FIELDS) - set(episode.steps)
    if missing:
        raise EpisodeFormatError(f"{episode.path}: missing step arrays {sorted(missing)}")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise EpisodeFormatError(f"{path}: unreadable array file: {exc}") from None


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
