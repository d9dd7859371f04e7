"""Episodes on disk as learner data: the episode store, recorded demos and the ingest log.

Every source uses the project's episode format (``tandem.episodes``) and is read
as ``EpisodeArrays`` in one vectorised read per episode. Where no recorder
writes the bridges' steps to an episode store, the learner keeps its own log
of every step it ingests under ``<run_dir>/ingest/<session>/`` (one session per
process start, so a restarted learner never collides with the episodes its
previous life left open; ``learner_service.ingest_log``). On resume the replay
is rebuilt from the union of the episode store and the log sessions (if any),
deduplicated by ``(robot_id, episode_id, step)``: the store covers what the
bridges published while the learner was down, the log covers a learner running
without a recorder.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from learner.episode_arrays import EpisodeArrays, Key, load_arrays, merge
from tandem.episodes import (
    CAM_PREFIX,
    EpisodeFormatError,
    EpisodeMeta,
    EpisodeWriter,
    StepData,
    list_episodes,
    read_meta,
)
from tandem.messages import EpisodeEvent, StepRecord

log = logging.getLogger(__name__)


def load_roots(
    roots: Iterable[Path], *, since_wall: float | None = None, demos_only: bool = False
) -> dict[Key, EpisodeArrays]:
    """Every episode under ``roots`` (partials included), merged per (robot, episode).

    ``since_wall`` keeps demos plus the episodes started at or after that time;
    ``demos_only`` keeps demonstration episodes only. Unreadable episodes are
    logged and skipped.
    """
    merged: dict[Key, EpisodeArrays] = {}
    for root in roots:
        for path, meta in _listed(root):
            is_demo = meta.kind == "demo"
            if demos_only and not is_demo:
                continue
            if since_wall is not None and not is_demo and meta.started_wall < since_wall:
                continue
            try:
                ep = load_arrays(path)
            except EpisodeFormatError as exc:
                log.error("skipping unreadable episode %s: %s", path, exc)
                continue
            key = (ep.robot_id, ep.episode_id)
            merged[key] = merge(merged[key], ep) if key in merged else ep
    return merged


def _listed(root: Path) -> list[tuple[Path, EpisodeMeta]]:
    """The episode directories under ``root`` (partials included) with their metadata."""
    out = []
    for path in list_episodes(root, include_partial=True):
        try:
            out.append((path, read_meta(path)))
        except EpisodeFormatError as exc:
            log.error("skipping unreadable episode %s: %s", path, exc)
    return out


def session_roots(run_dir: Path) -> list[Path]:
    """The ingest-log sessions of a run, oldest first."""
    base = run_dir / "ingest"
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


class IngestLog:
    """Writes every ingested step under ``root`` in the episode format, flushed often."""

    @classmethod
    def new_session(cls, run_dir: Path, flush_every_s: float) -> IngestLog:
        """A log in a fresh session directory ``<run_dir>/ingest/<time>-<pid>/``."""
        session = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        return cls(run_dir / "ingest" / session, flush_every_s)

    def __init__(self, root: Path, flush_every_s: float) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.flush_every_s = flush_every_s
        self._writers: dict[Key, EpisodeWriter] = {}

    def on_step(self, rec: StepRecord, images: dict[str, np.ndarray]) -> None:
        key = (rec.robot_id, rec.episode_id)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = self._make_writer(rec, images)
        writer.append(StepData.from_record(rec, images))

    def on_end(self, msg: EpisodeEvent, images: dict[str, np.ndarray]) -> None:
        writer = self._writers.pop((msg.robot_id, msg.episode_id), None)
        if writer is None:
            return
        final: dict[str, np.ndarray] = {}
        if msg.final_state is not None and len(msg.final_state) == writer.meta.state_dim:
            final["state"] = np.asarray(msg.final_state, np.float32)
            for cam in writer.meta.cameras:
                if cam in images:
                    final[CAM_PREFIX + cam] = images[cam]
        writer.finish(
            final or None,
            end_reason=msg.reason,
            outcome=msg.outcome,
            terminated=msg.terminated,
            truncated=msg.truncated,
            num_steps=writer.num_steps,
        )

    def close_episode(self, key: Key, reason: str) -> None:
        writer = self._writers.pop(key, None)
        if writer is not None:
            writer.finish(None, end_reason=reason)

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for key in list(self._writers):
            self.close_episode(key, "learner_stopped")

    def _make_writer(self, rec: StepRecord, images: dict[str, np.ndarray]) -> EpisodeWriter:
        shapes = {tuple(img.shape) for img in images.values()}
        if len(shapes) > 1:
            raise EpisodeFormatError(f"cameras of one step differ in shape: {sorted(shapes)}")
        meta = EpisodeMeta(
            robot_id=rec.robot_id,
            episode_id=rec.episode_id,
            kind=rec.episode_kind,
            cameras=sorted(images),
            image_shape=list(shapes.pop()) if shapes else None,
            state_dim=len(rec.state),
            started_wall=rec.t_wall,
            extra={"first_step": rec.step, "source": "learner_ingest"},
        )
        return EpisodeWriter(self.root, meta, flush_every_s=self.flush_every_s)
