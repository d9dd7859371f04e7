"""Learner metrics history: runs and downsampled metric points.

Also answers which learner env step a weights version was published at, which
episode rows copy when they finish (``fill_env_steps``).
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.db import models as m
from server.db.schemas import LearnerRunOut
from server.store.database import Database
from server.store.rows import utc
from tandem.messages import EpisodeKind


class MetricsStore:
    """Learner runs and their metric points, at most one point per metric per interval."""

    def __init__(self, db: Database, *, interval_s: float = 1.0) -> None:
        self.db = db
        self._interval = interval_s
        self._last_t: dict[tuple[str, str], float] = {}

    def record_metrics(
        self, run_id: str, t: float, metrics: dict[str, float | None], method: str | None = None
    ) -> int:
        """Keep at most one point per metric per ``metrics_interval_s``; returns points stored.

        ``t`` is the learner's wall time (Unix seconds). Metrics without a value yet
        (None) and non-finite values are skipped; the others are still stored.
        """
        keep = {}
        for name, value in metrics.items():
            last = self._last_t.get((run_id, name))
            if value is None or not np.isfinite(value):
                continue
            if last is None or t - last >= self._interval:
                keep[name] = float(value)
        with self.db.session() as s:
            run = s.get(m.LearnerRun, run_id)
            if run is None and keep:
                run = m.LearnerRun(id=run_id, method=method, started_at=utc(t))
                s.add(run)
            if run is not None:
                run.last_seen_at = utc(t)
            s.add_all(m.MetricPoint(run_id=run_id, t=t, name=k, value=v) for k, v in keep.items())
        for name in keep:
            self._last_t[(run_id, name)] = t
        return len(keep)

    def metrics_history(
        self,
        run_id: str,
        names: list[str] | None = None,
        since: float | None = None,
        max_points: int = 2000,
    ) -> dict[str, list[tuple[float, float]]]:
        """``{name: [(t, value), ...]}`` oldest first, thinned to ``max_points`` per name."""
        query = select(m.MetricPoint.name, m.MetricPoint.t, m.MetricPoint.value).where(
            m.MetricPoint.run_id == run_id
        )
        if names:
            query = query.where(m.MetricPoint.name.in_(names))
        if since is not None:
            query = query.where(m.MetricPoint.t >= since)
        history: dict[str, list[tuple[float, float]]] = {}
        with self.db.session() as s:
            for name, t, value in s.execute(query.order_by(m.MetricPoint.t)).all():
                history.setdefault(name, []).append((t, value))
        return {name: _thin(points, max_points) for name, points in history.items()}

    def list_runs(self) -> list[LearnerRunOut]:
        with self.db.session() as s:
            rows = s.scalars(select(m.LearnerRun).order_by(m.LearnerRun.started_at.desc())).all()
            return [LearnerRunOut.model_validate(r) for r in rows]


def fill_env_steps(s: Session, row: m.Episode, known: dict[int, int | None] | None = None) -> None:
    """Set a policy episode's ``env_steps`` from its weights version, if not set yet.

    ``known`` caches one lookup per version across rows.
    """
    version = row.weights_version
    if row.env_steps is not None or version is None or row.kind == EpisodeKind.DEMO.value:
        return
    known = {} if known is None else known
    if version not in known:
        known[version] = env_steps_at_version(s, version)
    row.env_steps = known[version]


def env_steps_at_version(s: Session, version: int) -> int | None:
    """The learner's env steps when it first reported weights version >= ``version``.

    From the stored metrics history of the newest run that reached that version
    (``weights/version`` and ``learner/env_steps`` of one message share its time).
    """
    first = (
        select(m.MetricPoint.run_id, func.min(m.MetricPoint.t))
        .where(m.MetricPoint.name == "weights/version", m.MetricPoint.value >= version)
        .group_by(m.MetricPoint.run_id)
        .order_by(func.min(m.MetricPoint.t).desc())
        .limit(1)
    )
    hit = s.execute(first).first()
    if hit is None:
        return None
    run_id, t_first = hit
    value = s.scalar(
        select(m.MetricPoint.value)
        .where(m.MetricPoint.run_id == run_id, m.MetricPoint.name == "learner/env_steps")
        .where(m.MetricPoint.t >= t_first)
        .order_by(m.MetricPoint.t)
        .limit(1)
    )
    return None if value is None else int(value)


def _thin(points: list[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    if len(points) <= max_points:
        return points
    stride = -(-len(points) // max_points)
    return points[::stride]
