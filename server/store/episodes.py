"""Episodes: database rows plus episode files under ``<data_dir>/episodes``.

Files (``tandem.episodes``) hold steps and frames and are never rewritten once
finished; the database holds metadata and everything an operator edits later
(outcome label, notes, discarded flag). ``reconcile`` makes the rows agree with
the files after a crash. The recorder writes through the "recorder side"
methods; the HTTP app reads and edits.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from server import export as export_mod
from server.db import models as m
from server.db.schemas import EpisodeDetail, EpisodeOut, ReconcileReport
from server.store.database import Database
from server.store.errors import ConflictError, NotFoundError
from server.store.frames import frame_jpeg
from server.store.metrics import fill_env_steps
from server.store.reconcile import reconcile_rows
from server.store.rows import apply_meta, ensure_robot, policy_result, row_from_meta
from tandem.episodes import PARTIAL_SUFFIX, Episode, EpisodeMeta, load_episode
from tandem.messages import EpisodeKind, EpisodeResult, Outcome

log = logging.getLogger(__name__)

MAX_PAGE = 1000
DELETED_SUFFIX = ".deleting"


class EpisodeFilters(TypedDict, total=False):
    """Filters of ``EpisodeStore.list_episodes``; a filter left out (or None) matches all."""

    robot: str | None
    kind: EpisodeKind | str | None
    outcome: Outcome | str | None  # "unlabeled": episodes without a label
    operator: str | None
    since: datetime | None  # started at or after
    until: datetime | None  # started before
    complete: bool | None
    discarded: bool | None
    result: EpisodeResult | str | None
    eval_batch: str | None


class EpisodeStore:
    """Episode rows and files: list, read, label, delete, export; record and reconcile.

    ``EpisodeStore(database_url, data_dir)`` opens its own database (the
    standalone recorder does); the app passes the ``Database`` it shares with
    the other stores.
    """

    def __init__(self, db: Database | str | None, data_dir: Path | None = None) -> None:
        if not isinstance(db, Database):
            if data_dir is None:
                raise TypeError("EpisodeStore(database_url, data_dir) needs a data directory")
            db = Database(db, data_dir)
        self.db = db
        self.episodes_root = db.episodes_root

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction on the episodes' database."""
        with self.db.session() as s:
            yield s

    # ----------------------------------------------------------------- read

    def list_episodes(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        **filters: Unpack[EpisodeFilters],
    ) -> tuple[list[EpisodeOut], int]:
        """Episodes newest first, filtered; returns (page, total matching).

        Filters (all optional): ``robot``, ``kind``, ``outcome``, ``operator``,
        ``since``, ``until``, ``complete``, ``discarded``, ``result``,
        ``eval_batch``. ``outcome="unlabeled"`` selects episodes without a
        label; ``since`` and ``until`` bound the start time (inclusive, exclusive).
        """
        if offset < 0 or not 0 < limit <= MAX_PAGE:
            raise ValueError(f"need offset >= 0 and 0 < limit <= {MAX_PAGE}")
        query = episode_query(filters)
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
            page = query.order_by(m.Episode.started_at.desc(), m.Episode.id.desc())
            rows = s.scalars(page.offset(offset).limit(limit)).all()
            return [EpisodeOut.model_validate(r) for r in rows], int(total)

    def get_episode(self, episode_id: str) -> EpisodeDetail:
        with self.session() as s:
            row = s.scalar(
                select(m.Episode)
                .where(m.Episode.id == episode_id)
                .options(selectinload(m.Episode.interventions))
            )
            if row is None:
                raise NotFoundError(f"no episode {episode_id!r}")
            return EpisodeDetail.model_validate(row)

    def episode_dir(self, episode_id: str) -> Path:
        """The episode's directory (the ``.partial`` one while it is being recorded)."""
        with self.session() as s:
            final = self.episodes_root / _row(s, episode_id).path
        if final.is_dir():
            return final
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        if partial.is_dir():
            return partial
        raise NotFoundError(f"episode {episode_id!r} has no files at {final}")

    def load(self, episode_id: str, *, images: bool = True) -> Episode:
        """Arrays (and camera images) of one episode, e.g. for replay or export."""
        return load_episode(self.episode_dir(episode_id), images=images)

    def frame_jpeg(self, episode_id: str, camera: str, step: int, quality: int = 90) -> bytes:
        """JPEG of camera ``camera`` at step index ``step`` (0-based position in the episode)."""
        return frame_jpeg(self.episode_dir(episode_id), episode_id, camera, step, quality)

    def export_hdf5(self, episode_ids: list[str], path: Path) -> Path:
        """Write the episodes to one HDF5 file (layout in ``server.export``)."""
        if not episode_ids:
            raise ValueError("nothing to export: no episode ids given")
        rows = [self.get_episode(eid) for eid in episode_ids]
        return export_mod.write_hdf5([(row, self.load(row.id)) for row in rows], Path(path))

    # ----------------------------------------------------------------- edit

    def label(self, episode_id: str, outcome: Outcome | str, operator: str | None) -> EpisodeOut:
        """Set the outcome label; ``discard`` also sets the discarded flag."""
        outcome = Outcome(outcome)
        with self.session() as s:
            row = _row(s, episode_id)
            row.outcome = outcome.value
            row.labeled_by = operator
            if outcome is Outcome.DISCARD:
                row.discarded = True
            row.result = policy_result(row)
            return EpisodeOut.model_validate(row)

    def annotate(self, episode_id: str, notes: str) -> EpisodeOut:
        with self.session() as s:
            row = _row(s, episode_id)
            row.notes = notes
            return EpisodeOut.model_validate(row)

    def discard(self, episode_id: str) -> EpisodeOut:
        return self._set_discarded(episode_id, True)

    def restore(self, episode_id: str) -> EpisodeOut:
        return self._set_discarded(episode_id, False)

    def _set_discarded(self, episode_id: str, flag: bool) -> EpisodeOut:
        with self.session() as s:
            row = _row(s, episode_id)
            row.discarded = flag
            row.result = policy_result(row)
            return EpisodeOut.model_validate(row)

    def delete(self, episode_id: str) -> None:
        """Remove the episode's files and rows; refused while it is being recorded."""
        with self.session() as s:
            row = _row(s, episode_id)
            if row.recording:
                raise ConflictError(f"episode {episode_id!r} is still being recorded")
            final = self.episodes_root / row.path
            # meta.json goes first: readers then ignore the directory even if we crash here.
            if final.is_dir():
                (final / "meta.json").unlink(missing_ok=True)
                doomed = final.with_name(final.name + DELETED_SUFFIX)
                final.rename(doomed)
                shutil.rmtree(doomed)
            s.delete(row)
        log.info("deleted episode %s", episode_id)

    # ----------------------------------------------------------------- recorder side

    def touch_robot(self, robot_id: str, spec: str | None = None) -> None:
        """Register a robot (or note that it was seen now)."""
        with self.session() as s:
            ensure_robot(s, robot_id, spec)

    def has_episode(self, episode_id: str) -> bool:
        with self.session() as s:
            return s.get(m.Episode, episode_id) is not None

    def begin_episode(self, meta: EpisodeMeta) -> None:
        """Create the row of an episode that the recorder starts writing."""
        with self.session() as s:
            ensure_robot(s, meta.robot_id)
            row = row_from_meta(meta)
            row.recording = True
            row.complete = False
            s.add(row)

    def record_progress(self, episode_id: str, length: int) -> None:
        with self.session() as s:
            _row(s, episode_id).length = length

    def finish_episode(self, meta: EpisodeMeta) -> EpisodeOut:
        """Update the row from the final metadata written to disk."""
        with self.session() as s:
            row = s.get(m.Episode, meta.episode_id)
            if row is None:
                ensure_robot(s, meta.robot_id)
                row = row_from_meta(meta)
                s.add(row)
            apply_meta(row, meta)
            fill_env_steps(s, row)
            return EpisodeOut.model_validate(row)

    def reconcile(self) -> ReconcileReport:
        """Recover interrupted episodes and make the rows agree with the files.

        Run only when no recorder is writing (``Recorder.start`` does). Rows
        carry what files cannot (labels, notes, discarded); the files decide
        length, completeness and everything measured.
        """
        report, new = reconcile_rows(self.db)
        for meta in new:
            self.finish_episode(meta)
            report.added.append(meta.episode_id)
        if report.recovered or report.added or report.updated or report.removed:
            log.warning("reconciled store: %s", report.model_dump_json())
        return report


def _row(s: Session, episode_id: str) -> m.Episode:
    row = s.get(m.Episode, episode_id)
    if row is None:
        raise NotFoundError(f"no episode {episode_id!r}")
    return row


def episode_query(filters: EpisodeFilters) -> Select[Any]:
    """The episodes matching every filter that is not None (see ``list_episodes``)."""
    f = filters
    kind, result, outcome = f.get("kind"), f.get("result"), f.get("outcome")
    query = select(m.Episode)
    conditions = {
        m.Episode.robot_id: f.get("robot"),
        m.Episode.kind: None if kind is None else EpisodeKind(kind).value,
        m.Episode.operator: f.get("operator"),
        m.Episode.complete: f.get("complete"),
        m.Episode.discarded: f.get("discarded"),
        m.Episode.result: None if result is None else EpisodeResult(result).value,
        m.Episode.eval_batch: f.get("eval_batch"),
    }
    for column, value in conditions.items():
        if value is not None:
            query = query.where(column == value)
    if outcome == "unlabeled":
        query = query.where(m.Episode.outcome.is_(None))
    elif outcome is not None:
        query = query.where(m.Episode.outcome == Outcome(outcome).value)
    if (since := f.get("since")) is not None:
        query = query.where(m.Episode.started_at >= since)
    if (until := f.get("until")) is not None:
        query = query.where(m.Episode.started_at < until)
    return query
