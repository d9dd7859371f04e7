"""Episodes on disk as learner data: the episode store, recorded demos and the ingest log.

Every source uses the project's episode format (``tandem.episodes``). The
learner writes each step it ingests to its own log under
``<run_dir>/ingest/<session>/`` (one session per process start, so a restarted
learner never collides with the episodes its previous life left open). On
resume the replay is rebuilt from the union of the ingest log and the episode
store, deduplicated by ``(robot_id, episode_id, step)``: the store covers what
the bridges published while the learner was down, the log covers a learner
running without a recorder.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from learner.service.assembly import AssembledEpisode, Key, Observation
from tandem.episodes import (
    CAM_PREFIX,
    MODES,
    SOURCES,
    EpisodeFormatError,
    EpisodeMeta,
    EpisodeWriter,
    StepData,
    list_episodes,
    load_episode,
    read_meta,
)
from tandem.messages import EpisodeEvent, StepRecord

log = logging.getLogger(__name__)

# End reasons that mean "this episode may still be receiving steps somewhere".
OPEN_REASONS = {None, "interrupted", "recorder_stopped", "learner_stopped"}


def read_episode(path: Path) -> AssembledEpisode:
    """Load one episode directory (finished or partial) as an ``AssembledEpisode``."""
    ep = load_episode(path)
    meta = ep.meta
    s = ep.steps
    steps = []
    for i in range(len(ep)):
        human = s["human_action"][i]
        policy = s["policy_action"][i]
        steps.append(
            StepData(
                state=s["state"][i],
                action=s["action"][i],
                images={cam: ep.images[cam][i] for cam in ep.images},
                policy_action=None if np.isnan(policy).all() else policy,
                human_action=None if np.isnan(human).all() else human,
                reward=float(s["reward"][i]),
                success=bool(s["success"][i]),
                terminated=bool(s["terminated"][i]),
                truncated=bool(s["truncated"][i]),
                intervention=bool(s["intervention"][i]),
                action_source=SOURCES[int(s["action_source"][i])],
                mode=MODES[int(s["mode"][i])],
                step=int(s["step"][i]),
                seq=int(s["seq"][i]),
                t_obs=float(s["t_obs"][i]),
                t_wall=float(s["t_wall"][i]),
            )
        )
    final = None
    if "state" in ep.final:
        images = {k[len(CAM_PREFIX) :]: v for k, v in ep.final.items() if k.startswith(CAM_PREFIX)}
        final = Observation(ep.final["state"].astype(np.float32), images)
    ended = not path.name.endswith(".partial") and meta.end_reason not in OPEN_REASONS
    return AssembledEpisode(
        robot_id=meta.robot_id,
        episode_id=meta.episode_id,
        kind=meta.kind,
        steps=steps,
        final=final,
        num_steps=meta.num_steps if final is not None else None,
        outcome=meta.outcome,
        terminated=meta.terminated,
        truncated=meta.truncated,
        ended=ended,
        end_reason=meta.end_reason,
    )


def merge(a: AssembledEpisode, b: AssembledEpisode) -> AssembledEpisode:
    """The union of two views of one episode: steps deduplicated by index, end info from either."""
    by_step = {s.step: s for s in a.steps}
    for s in b.steps:
        by_step.setdefault(s.step, s)
    ended_view = a if a.ended or not b.ended else b
    other = b if ended_view is a else a
    return AssembledEpisode(
        robot_id=a.robot_id,
        episode_id=a.episode_id,
        kind=a.kind,
        steps=[by_step[k] for k in sorted(by_step)],
        final=ended_view.final or other.final,
        num_steps=ended_view.num_steps if ended_view.num_steps is not None else other.num_steps,
        outcome=ended_view.outcome or other.outcome,
        terminated=ended_view.terminated,
        truncated=ended_view.truncated,
        ended=a.ended or b.ended,
        end_reason=ended_view.end_reason,
    )


def load_roots(
    roots: Iterable[Path], *, since_wall: float | None = None, demos_only: bool = False
) -> dict[Key, AssembledEpisode]:
    """Every episode under ``roots`` (partials included), merged per (robot, episode).

    ``since_wall`` keeps demos plus the episodes started at or after that time;
    ``demos_only`` keeps demonstration episodes only. Unreadable episodes are
    logged and skipped.
    """
    merged: dict[Key, AssembledEpisode] = {}
    for root in roots:
        for path in list_episodes(root, include_partial=True):
            try:
                ep = read_episode(path)
                started = _started_wall(path)
            except EpisodeFormatError as exc:
                log.error("skipping unreadable episode %s: %s", path, exc)
                continue
            is_demo = ep.kind == "demo"
            if demos_only and not is_demo:
                continue
            if since_wall is not None and not is_demo and started < since_wall:
                continue
            key = (ep.robot_id, ep.episode_id)
            merged[key] = merge(merged[key], ep) if key in merged else ep
    return merged


def _started_wall(path: Path) -> float:
    return read_meta(path).started_wall


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
