"""The recorder's bookkeeping: counters, metadata from bridge messages, writers, final frames."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tandem.episodes import CAM_PREFIX, EpisodeFormatError, EpisodeMeta, EpisodeWriter
from tandem.messages import EpisodeEvent, StepRecord

log = logging.getLogger("server.recorder")


@dataclass
class RecorderStats:
    """Counters since start (steps and messages)."""

    steps: int = 0
    episodes_started: int = 0
    episodes_finished: int = 0
    labels: int = 0
    refused_labels: int = 0  # success labels for episodes stored incomplete
    flushes: int = 0
    malformed: int = 0
    dropped_steps: int = 0
    errors: int = 0
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0
    restarts: int = 0  # new sender epochs seen after another (a bridge restarted)
    last_error: str | None = None


class RecorderCounters:
    """``RecorderStats`` under a lock: the recording thread counts, any thread reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = RecorderStats()

    def bump(self, counter: str) -> None:
        with self._lock:
            setattr(self._stats, counter, getattr(self._stats, counter) + 1)

    def error(self, counter: str, exc: Exception) -> None:
        """Count a message that failed (``malformed`` or ``errors``) and keep its reason."""
        log.warning("recorder: %s message: %s", counter, exc)
        with self._lock:
            setattr(self._stats, counter, getattr(self._stats, counter) + 1)
            self._stats.last_error = f"{type(exc).__name__}: {exc}"

    def snapshot(self) -> RecorderStats:
        with self._lock:
            return RecorderStats(**asdict(self._stats))


@dataclass
class OpenEpisode:
    """An episode being recorded: its start info and (after the first step) its writer."""

    meta: EpisodeMeta
    writer: EpisodeWriter | None = None
    next_step: int = 0
    missing: int = 0
    last_flush: float = field(default_factory=time.monotonic)


def meta_from_step(rec: StepRecord, task: str | None) -> EpisodeMeta:
    """Metadata of an episode whose start event was missed, from its first step seen."""
    return EpisodeMeta(
        robot_id=rec.robot_id,
        episode_id=rec.episode_id,
        kind=rec.episode_kind,
        state_dim=len(rec.state),
        task=task,
        started_wall=rec.t_wall,
        extra={"first_step": rec.step, "start_event": False},
    )


def meta_from_start(msg: EpisodeEvent, task: str | None) -> EpisodeMeta:
    """Metadata of an episode from its start event (the state size comes with a step)."""
    return EpisodeMeta(
        robot_id=msg.robot_id,
        episode_id=msg.episode_id,
        kind=msg.episode_kind,
        state_dim=0,
        task=task,
        operator=msg.operator,
        started_wall=msg.t_wall,
        extra=episode_extra(msg),
    )


def make_writer(
    root: Path, meta: EpisodeMeta, state_dim: int, images: dict[str, np.ndarray]
) -> EpisodeWriter:
    """The writer of an episode, shaped by its first step's (or end event's) state and images."""
    shapes = {tuple(img.shape) for img in images.values()}
    if len(shapes) > 1:
        raise EpisodeFormatError(f"cameras of one step differ in shape: {sorted(shapes)}")
    meta = meta.model_copy(
        update={
            "state_dim": state_dim,
            "cameras": sorted(images),
            "image_shape": list(shapes.pop()) if shapes else None,
        }
    )
    # The recorder decides when to flush (also when no step arrives), not the writer.
    return EpisodeWriter(root, meta, flush_every_s=float("inf"))


def end_updates(msg: EpisodeEvent, meta: EpisodeMeta) -> dict[str, Any]:
    """Metadata an end event sets: outcome, end flags and time, operator, extra fields."""
    updates: dict[str, Any] = {
        "outcome": msg.outcome,
        "terminated": msg.terminated,
        "truncated": msg.truncated,
        "ended_wall": msg.t_wall,
    }
    if msg.operator is not None:
        updates["operator"] = msg.operator
    extra = episode_extra(msg)
    if extra:
        updates["extra"] = {**meta.extra, **extra}
    return updates


def episode_extra(msg: EpisodeEvent) -> dict[str, Any]:
    """Weights version and evaluation batch of an episode event, for ``EpisodeMeta.extra``."""
    fields = {
        "weights_version": msg.weights_version,
        "eval_batch": msg.eval_batch,
        "eval_index": msg.eval_index,
    }
    return {k: v for k, v in fields.items() if v is not None}


def final_obs(
    meta: EpisodeMeta, msg: EpisodeEvent, images: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The end event's observation keyed like chunk arrays (``state``, ``cam_<name>``)."""
    final: dict[str, np.ndarray] = {}
    if msg.final_state is not None and len(msg.final_state) == meta.state_dim:
        final["state"] = np.asarray(msg.final_state, np.float32)
    shape = tuple(meta.image_shape or ())
    for cam in meta.cameras:
        image = images.get(cam)
        if image is not None and image.shape == shape and image.dtype == np.uint8:
            final[CAM_PREFIX + cam] = image
    return final
