"""Make the episode rows agree with the episode files after a crash."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sqlalchemy import select

from server.db import models as m
from server.db.schemas import ReconcileReport
from server.store.database import Database
from server.store.rows import apply_meta
from tandem.episodes import PARTIAL_SUFFIX, EpisodeMeta, read_meta, recover_partials

log = logging.getLogger(__name__)


def reconcile_rows(db: Database) -> tuple[ReconcileReport, list[EpisodeMeta]]:
    """Recover interrupted episodes and update or remove rows from the files.

    Returns the report and the metadata of finished episodes on disk that have
    no row yet; the caller adds those (``EpisodeStore.finish_episode``) and
    lists them in ``report.added``.
    """
    report = ReconcileReport()
    report.recovered = [p.name for p in recover_partials(db.episodes_root)]
    on_disk = metas_on_disk(db.episodes_root)
    with db.session() as s:
        for row in s.scalars(select(m.Episode)).all():
            meta = on_disk.pop(row.id, None)
            if meta is None:
                log.warning("episode %s: no files at %s; removing its row", row.id, row.path)
                s.delete(row)
                report.removed.append(row.id)
            elif apply_meta(row, meta):
                report.updated.append(row.id)
    return report, list(on_disk.values())


def metas_on_disk(episodes_root: Path) -> dict[str, EpisodeMeta]:
    """Metadata of every finished episode directory, by episode id.

    A directory without ``meta.json`` (a delete interrupted half-way) is removed.
    """
    metas: dict[str, EpisodeMeta] = {}
    for path in sorted(episodes_root.glob("*/*")):
        if not path.is_dir() or path.name.endswith(PARTIAL_SUFFIX):
            continue
        if not (path / "meta.json").exists():
            log.warning("removing leftover directory without metadata: %s", path)
            shutil.rmtree(path)
            continue
        try:
            metas[path.name] = read_meta(path)
        except ValueError as exc:
            log.error("skipping unreadable episode %s: %s", path, exc)
    return metas
