"""The episode store: database rows plus episode files under ``<data_dir>/episodes``.

Files (``tandem.episodes``) hold steps and frames and are never rewritten once
finished; the database holds metadata and everything an operator edits later
(outcome label, notes, discarded flag). ``reconcile`` makes the rows agree with
the files after a crash. Every method opens its own short transaction, so one
store may be shared by the HTTP app and the recorder thread.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from server import export as export_mod
from server.db import models as m
from server.db.engine import default_database_url, make_engine, make_session_factory, migrate
from server.db.schemas import (
    EpisodeDetail,
    EpisodeOut,
    EvalBatchOut,
    LearnerRunOut,
    OperatorOut,
    ReconcileReport,
    ResetOut,
)
from tandem.episodes import (
    CAM_PREFIX,
    PARTIAL_SUFFIX,
    Episode,
    EpisodeMeta,
    load_episode,
    read_meta,
    recover_partials,
)
from tandem.messages import EpisodeKind, EpisodeResult, Outcome, episode_result

log = logging.getLogger(__name__)

MAX_PAGE = 1000
MAX_EVAL_EPISODES = 20_000  # evaluation episodes read to build the batch list
EXTRA_FIELDS = ("weights_version", "eval_batch", "eval_index")  # EpisodeMeta.extra -> row
DEFAULT_OPERATOR = "admin"
DELETED_SUFFIX = ".deleting"


class StoreError(Exception):
    """Base of the store's errors."""


class NotFoundError(StoreError, LookupError):
    """No such episode, operator, camera or step."""


class ConflictError(StoreError):
    """The request clashes with the current state (duplicate name, episode still recording)."""


NotFound = NotFoundError  # the short names the app uses
Conflict = ConflictError


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class EpisodeStore:
    """Episode metadata, operators, tokens, resets and metrics over one database."""

    def __init__(
        self, database_url: str | None, data_dir: Path, *, metrics_interval_s: float = 1.0
    ) -> None:
        self.data_dir = Path(data_dir)
        self.episodes_root = self.data_dir / "episodes"
        self.episodes_root.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(database_url or default_database_url(self.data_dir))
        migrate(self.engine)
        self._sessions = make_session_factory(self.engine)
        self._hasher = PasswordHasher()
        self._metrics_interval = metrics_interval_s
        self._metric_last_t: dict[tuple[str, str], float] = {}

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    # ----------------------------------------------------------------- episodes (read)

    def list_episodes(
        self,
        *,
        robot: str | None = None,
        kind: EpisodeKind | str | None = None,
        outcome: Outcome | str | None = None,
        operator: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        complete: bool | None = None,
        discarded: bool | None = None,
        result: EpisodeResult | str | None = None,
        eval_batch: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[EpisodeOut], int]:
        """Episodes newest first, filtered; returns (page, total matching).

        ``outcome="unlabeled"`` selects episodes without a label; ``since`` and
        ``until`` bound the start time (inclusive, exclusive).
        """
        if offset < 0 or not 0 < limit <= MAX_PAGE:
            raise ValueError(f"need offset >= 0 and 0 < limit <= {MAX_PAGE}")
        query = select(m.Episode)
        conditions = {
            m.Episode.robot_id: robot,
            m.Episode.kind: None if kind is None else EpisodeKind(kind).value,
            m.Episode.operator: operator,
            m.Episode.complete: complete,
            m.Episode.discarded: discarded,
            m.Episode.result: None if result is None else EpisodeResult(result).value,
            m.Episode.eval_batch: eval_batch,
        }
        for column, value in conditions.items():
            if value is not None:
                query = query.where(column == value)
        query = _outcome_filter(query, outcome)
        if since is not None:
            query = query.where(m.Episode.started_at >= since)
        if until is not None:
            query = query.where(m.Episode.started_at < until)
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
            row = self._row(s, episode_id)
            final = self.episodes_root / row.path
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
        path = self.episode_dir(episode_id)
        key = CAM_PREFIX + camera
        first = 0
        for chunk in sorted(path.glob("chunk_*.npz")):
            with np.load(chunk, allow_pickle=False) as data:
                if key not in data.files:
                    raise NotFoundError(f"episode {episode_id!r} has no camera {camera!r}")
                n = int(data["step"].shape[0])
                if first <= step < first + n:
                    image = data[key][step - first]
                    return _jpeg(image, quality)
                first += n
        raise NotFoundError(f"episode {episode_id!r} has no step {step} (it has {first} on disk)")

    # ----------------------------------------------------------------- episodes (edit)

    def label(self, episode_id: str, outcome: Outcome | str, operator: str | None) -> EpisodeOut:
        """Set the outcome label; ``discard`` also sets the discarded flag."""
        outcome = Outcome(outcome)
        with self.session() as s:
            row = self._row(s, episode_id)
            row.outcome = outcome.value
            row.labeled_by = operator
            if outcome is Outcome.DISCARD:
                row.discarded = True
            row.result = _result(row)
            return EpisodeOut.model_validate(row)

    def annotate(self, episode_id: str, notes: str) -> EpisodeOut:
        with self.session() as s:
            row = self._row(s, episode_id)
            row.notes = notes
            return EpisodeOut.model_validate(row)

    def discard(self, episode_id: str) -> EpisodeOut:
        return self._set_discarded(episode_id, True)

    def restore(self, episode_id: str) -> EpisodeOut:
        return self._set_discarded(episode_id, False)

    def _set_discarded(self, episode_id: str, flag: bool) -> EpisodeOut:
        with self.session() as s:
            row = self._row(s, episode_id)
            row.discarded = flag
            row.result = _result(row)
            return EpisodeOut.model_validate(row)

    def delete(self, episode_id: str) -> None:
        """Remove the episode's files and rows; refused while it is being recorded."""
        with self.session() as s:
            row = self._row(s, episode_id)
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

    def export_hdf5(self, episode_ids: list[str], path: Path) -> Path:
        """Write the episodes to one HDF5 file (layout in ``server.export``)."""
        if not episode_ids:
            raise ValueError("nothing to export: no episode ids given")
        rows = [self.get_episode(eid) for eid in episode_ids]
        return export_mod.write_hdf5([(row, self.load(row.id)) for row in rows], Path(path))

    def _row(self, s: Session, episode_id: str) -> m.Episode:
        row = s.get(m.Episode, episode_id)
        if row is None:
            raise NotFoundError(f"no episode {episode_id!r}")
        return row

    # ----------------------------------------------------------------- recorder side

    def touch_robot(self, robot_id: str, spec: str | None = None) -> None:
        """Register a robot (or note that it was seen now)."""
        with self.session() as s:
            _ensure_robot(s, robot_id, spec)

    def has_episode(self, episode_id: str) -> bool:
        with self.session() as s:
            return s.get(m.Episode, episode_id) is not None

    def begin_episode(self, meta: EpisodeMeta) -> None:
        """Create the row of an episode that the recorder starts writing."""
        with self.session() as s:
            _ensure_robot(s, meta.robot_id)
            row = _row_from_meta(meta)
            row.recording = True
            row.complete = False
            s.add(row)

    def record_progress(self, episode_id: str, length: int) -> None:
        with self.session() as s:
            self._row(s, episode_id).length = length

    def finish_episode(self, meta: EpisodeMeta) -> EpisodeOut:
        """Update the row from the final metadata written to disk."""
        with self.session() as s:
            row = s.get(m.Episode, meta.episode_id)
            if row is None:
                _ensure_robot(s, meta.robot_id)
                row = _row_from_meta(meta)
                s.add(row)
            _apply_meta(row, meta)
            _fill_env_steps(s, row)
            return EpisodeOut.model_validate(row)

    def reconcile(self) -> ReconcileReport:
        """Recover interrupted episodes and make the rows agree with the files.

        Run only when no recorder is writing (``Recorder.start`` does). Rows
        carry what files cannot (labels, notes, discarded); the files decide
        length, completeness and everything measured.
        """
        report = ReconcileReport()
        report.recovered = [p.name for p in recover_partials(self.episodes_root)]
        on_disk = self._metas_on_disk()
        with self.session() as s:
            for row in s.scalars(select(m.Episode)).all():
                meta = on_disk.pop(row.id, None)
                if meta is None:
                    log.warning("episode %s: no files at %s; removing its row", row.id, row.path)
                    s.delete(row)
                    report.removed.append(row.id)
                elif _apply_meta(row, meta):
                    report.updated.append(row.id)
        for meta in on_disk.values():
            self.finish_episode(meta)
            report.added.append(meta.episode_id)
        if report.recovered or report.added or report.updated or report.removed:
            log.warning("reconciled store: %s", report.model_dump_json())
        return report

    def _metas_on_disk(self) -> dict[str, EpisodeMeta]:
        metas: dict[str, EpisodeMeta] = {}
        for path in sorted(self.episodes_root.glob("*/*")):
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

    # ----------------------------------------------------------------- evaluation batches

    def list_evals(self, robot: str | None = None) -> list[EvalBatchOut]:
        """Evaluation batches oldest first, from their finished episodes with a result.

        Env steps missing when an episode finished (metrics not stored yet) are filled now.
        """
        query = (
            select(m.Episode)
            .where(m.Episode.kind == EpisodeKind.EVALUATION.value)
            .where(m.Episode.eval_batch.is_not(None))
            .order_by(m.Episode.started_at.desc())
            .limit(MAX_EVAL_EPISODES)
        )
        if robot is not None:
            query = query.where(m.Episode.robot_id == robot)
        with self.session() as s:
            rows = list(reversed(s.scalars(query).all()))
            known: dict[int, int | None] = {}  # one lookup per weights version
            for row in rows:
                _fill_env_steps(s, row, known)
            batches: dict[str, list[m.Episode]] = {}
            for row in rows:
                batches.setdefault(str(row.eval_batch), []).append(row)
            return [_eval_batch(rows) for rows in batches.values()]

    # ----------------------------------------------------------------- operators and tokens

    def create_operator(self, name: str, role: m.Role | str, password: str) -> OperatorOut:
        role = m.Role(role)
        if not name or not password:
            raise ValueError("operator name and password must not be empty")
        password_hash = self._hasher.hash(password)  # before the write transaction
        try:
            with self.session() as s:
                row = m.Operator(name=name, role=role.value, password_hash=password_hash)
                s.add(row)
                s.flush()
                return OperatorOut.model_validate(row)
        except IntegrityError:
            raise ConflictError(f"operator {name!r} already exists") from None

    def get_operator(self, name: str) -> OperatorOut | None:
        with self.session() as s:
            row = s.scalar(select(m.Operator).where(m.Operator.name == name))
            return None if row is None else OperatorOut.model_validate(row)

    def list_operators(self) -> list[OperatorOut]:
        with self.session() as s:
            rows = s.scalars(select(m.Operator).order_by(m.Operator.id)).all()
            return [OperatorOut.model_validate(r) for r in rows]

    def verify_password(self, name: str, password: str) -> OperatorOut | None:
        """The operator when ``password`` matches, else None.

        argon2 runs outside any transaction (SQLite transactions here take the
        write lock), and an unknown name is verified against a dummy hash, so
        it costs as long as a wrong password and does not reveal the name.
        """
        with self.session() as s:
            row = s.scalar(select(m.Operator).where(m.Operator.name == name))
            found = None if row is None else (OperatorOut.model_validate(row), row.password_hash)
        if found is None:
            self._password_matches(self.dummy_hash, password)
            return None
        operator, stored = found
        if not self._password_matches(stored, password):
            return None
        if self._hasher.check_needs_rehash(stored):
            self._rehash(operator.id, stored, self._hasher.hash(password))
        return operator

    def _password_matches(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @cached_property
    def dummy_hash(self) -> str:
        """What an unknown name is verified against; made on first use (the app warms it)."""
        return self._hasher.hash(secrets.token_hex(16))

    def _rehash(self, operator_id: int, old_hash: str, new_hash: str) -> None:
        """Store ``new_hash`` unless the password changed since ``old_hash`` was read."""
        with self.session() as s:
            row = s.get(m.Operator, operator_id)
            if row is not None and row.password_hash == old_hash:
                row.password_hash = new_hash

    def issue_token(self, operator_id: int, ttl_s: float, one_time: bool = False) -> str:
        """A new random bearer token; only its sha256 is stored."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.session() as s:
            if s.get(m.Operator, operator_id) is None:
                raise NotFoundError(f"no operator with id {operator_id}")
            s.add(
                m.AuthToken(
                    token_hash=_hash_token(token),
                    operator_id=operator_id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl_s),
                    one_time=one_time,
                )
            )
        return token

    def resolve_token(self, token: str) -> OperatorOut | None:
        """The token's operator, or None if unknown or expired; a one-time token is used up."""
        now = datetime.now(UTC)
        with self.session() as s:
            row = s.scalar(select(m.AuthToken).where(m.AuthToken.token_hash == _hash_token(token)))
            if row is None or row.expires_at <= now:
                return None
            if row.one_time:
                if row.used_at is not None:
                    return None
                row.used_at = now
            return OperatorOut.model_validate(row.operator)

    def revoke_token(self, token: str) -> bool:
        with self.session() as s:
            row = s.scalar(select(m.AuthToken).where(m.AuthToken.token_hash == _hash_token(token)))
            if row is not None:
                s.delete(row)
            return row is not None

    def ensure_default_operator(self, ttl_s: float = 900.0) -> tuple[OperatorOut, str]:
        """Create operator ``admin`` if there is no operator yet; issue a one-time login token.

        The created account gets a random password nobody knows: the printed
        one-time token is the way in. Every call issues a fresh token.
        """
        with self.session() as s:
            row = s.scalar(
                select(m.Operator)
                .where(m.Operator.role == m.Role.OPERATOR.value)
                .order_by(m.Operator.id)
            )
            operator = None if row is None else OperatorOut.model_validate(row)
        if operator is None:
            operator = self.create_operator(
                DEFAULT_OPERATOR, m.Role.OPERATOR, secrets.token_hex(24)
            )
            log.info("created default operator %r", operator.name)
        return operator, self.issue_token(operator.id, ttl_s, one_time=True)

    # ----------------------------------------------------------------- sessions, resets, runs

    def open_session(self, operator_id: int | None, robot_id: str | None) -> int:
        with self.session() as s:
            if robot_id is not None:
                _ensure_robot(s, robot_id)
            row = m.OperatingSession(operator_id=operator_id, robot_id=robot_id)
            s.add(row)
            s.flush()
            return row.id

    def close_session(self, session_id: int) -> None:
        with self.session() as s:
            row = s.get(m.OperatingSession, session_id)
            if row is None:
                raise NotFoundError(f"no session {session_id}")
            row.ended_at = datetime.now(UTC)

    def record_reset(
        self, robot: str, requested: datetime, done: datetime | None = None
    ) -> ResetOut:
        """Log one scene reset (``done`` None while the operator is still resetting)."""
        with self.session() as s:
            _ensure_robot(s, robot)
            duration = None if done is None else (done - requested).total_seconds()
            row = m.Reset(robot_id=robot, requested_at=requested, done_at=done, duration_s=duration)
            s.add(row)
            s.flush()
            return ResetOut.model_validate(row)

    def list_resets(self, robot: str | None = None, limit: int = 100) -> list[ResetOut]:
        query = select(m.Reset).order_by(m.Reset.requested_at.desc()).limit(limit)
        if robot is not None:
            query = query.where(m.Reset.robot_id == robot)
        with self.session() as s:
            return [ResetOut.model_validate(r) for r in s.scalars(query).all()]

    def record_metrics(
        self, run_id: str, t: float, metrics: dict[str, float | None], method: str | None = None
    ) -> int:
        """Keep at most one point per metric per ``metrics_interval_s``; returns points stored.

        ``t`` is the learner's wall time (Unix seconds). Metrics without a value yet
        (None) and non-finite values are skipped; the others are still stored.
        """
        keep = {}
        for name, value in metrics.items():
            last = self._metric_last_t.get((run_id, name))
            if value is None or not np.isfinite(value):
                continue
            if last is None or t - last >= self._metrics_interval:
                keep[name] = float(value)
        with self.session() as s:
            run = s.get(m.LearnerRun, run_id)
            if run is None and keep:
                run = m.LearnerRun(id=run_id, method=method, started_at=_utc(t))
                s.add(run)
            if run is not None:
                run.last_seen_at = _utc(t)
            s.add_all(m.MetricPoint(run_id=run_id, t=t, name=k, value=v) for k, v in keep.items())
        for name in keep:
            self._metric_last_t[(run_id, name)] = t
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
        with self.session() as s:
            for name, t, value in s.execute(query.order_by(m.MetricPoint.t)).all():
                history.setdefault(name, []).append((t, value))
        return {name: _thin(points, max_points) for name, points in history.items()}

    def list_runs(self) -> list[LearnerRunOut]:
        with self.session() as s:
            rows = s.scalars(select(m.LearnerRun).order_by(m.LearnerRun.started_at.desc())).all()
            return [LearnerRunOut.model_validate(r) for r in rows]


def _result(row: m.Episode) -> str | None:
    """The row's policy result: the operator's label first, then the task's success signal."""
    if row.discarded or row.outcome == Outcome.DISCARD.value:
        return None
    success = row.success if row.outcome is None else row.outcome == Outcome.SUCCESS.value
    result = episode_result(EpisodeKind(row.kind), success, row.intervention_steps)
    return None if result is None else result.value


def _fill_env_steps(s: Session, row: m.Episode, known: dict[int, int | None] | None = None) -> None:
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


def _eval_batch(rows: list[m.Episode]) -> EvalBatchOut:
    done = [r for r in rows if r.result is not None and not r.recording]
    wins = sum(r.result == EpisodeResult.AUTONOMOUS_SUCCESS.value for r in done)
    versions = sorted({r.weights_version for r in rows if r.weights_version is not None})
    steps = [r.env_steps for r in rows if r.env_steps is not None]
    ends = [r.ended_at for r in rows if r.ended_at is not None]
    return EvalBatchOut(
        batch=str(rows[0].eval_batch), robot_id=rows[0].robot_id, started_at=rows[0].started_at,
        ended_at=max(ends) if ends else None, episodes=len(done), successes=wins,
        success_rate=wins / len(done) if done else None,
        weights_version=rows[0].weights_version, weights_versions=versions,
        env_steps=steps[0] if steps else None, episode_ids=[r.id for r in rows],
    )  # fmt: skip


def _ensure_robot(s: Session, robot_id: str, spec: str | None = None) -> m.Robot:
    robot = s.get(m.Robot, robot_id)
    if robot is None:
        robot = m.Robot(id=robot_id)
        s.add(robot)
        s.flush()
    robot.last_seen_at = datetime.now(UTC)
    if spec is not None:
        robot.spec = spec
    return robot


def _outcome_filter(query: Select[Any], outcome: Outcome | str | None) -> Select[Any]:
    if outcome is None:
        return query
    if outcome == "unlabeled":
        return query.where(m.Episode.outcome.is_(None))
    return query.where(m.Episode.outcome == Outcome(outcome).value)


def _thin(points: list[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    if len(points) <= max_points:
        return points
    stride = -(-len(points) // max_points)
    return points[::stride]


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    bgr = np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise StoreError("JPEG encoding failed")
    return buf.tobytes()


def _row_from_meta(meta: EpisodeMeta) -> m.Episode:
    return m.Episode(
        id=meta.episode_id,
        robot_id=meta.robot_id,
        kind=EpisodeKind(meta.kind).value,
        operator=meta.operator,
        task=meta.task,
        started_at=_utc(meta.started_wall),
        path=f"{meta.robot_id}/{meta.episode_id}",
        outcome=None if meta.outcome is None else Outcome(meta.outcome).value,
        notes=meta.notes,
        discarded=meta.outcome == Outcome.DISCARD,
        length=0,
        episode_return=0.0,
        success=False,
        intervention_count=0,
        intervention_steps=0,
        recording=False,
        complete=False,
        terminated=False,
        truncated=False,
        **_extra(meta),
    )


def _extra(meta: EpisodeMeta) -> dict[str, Any]:
    """Weights version and evaluation batch the recorder put in the metadata's ``extra``."""
    out: dict[str, Any] = {}
    for key in EXTRA_FIELDS:
        value = meta.extra.get(key)
        if value is None:
            continue
        if key == "eval_batch":
            ok = isinstance(value, str) and 0 < len(value) <= 128
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        if ok:
            out[key] = value
        else:  # a hand-edited meta.json must not stop the store from opening
            log.warning(
                "episode %s: ignoring invalid %s %r in meta.json", meta.episode_id, key, value
            )
    return out


def _apply_meta(row: m.Episode, meta: EpisodeMeta) -> bool:
    """Copy the measured fields of finished-episode metadata; True if anything changed.

    An outcome in the files fills an unlabelled row only: later labels live in the DB.
    """
    ended = None if meta.ended_wall is None else _utc(meta.ended_wall)
    values: dict[str, Any] = {
        "length": meta.num_steps,
        "episode_return": float(meta.episode_return),
        "success": meta.success,
        "complete": meta.complete,
        "terminated": meta.terminated,
        "truncated": meta.truncated,
        "end_reason": meta.end_reason,
        "recording": False,
        "intervention_count": len(meta.interventions),
        "intervention_steps": sum(end - start for start, end in meta.interventions),
        **_extra(meta),
    }
    if ended is not None and (
        row.ended_at is None or abs(row.ended_at - ended).total_seconds() > 1e-3
    ):
        values["ended_at"] = ended
    if row.outcome is None and meta.outcome is not None:
        values["outcome"] = Outcome(meta.outcome).value
        values["discarded"] = row.discarded or meta.outcome == Outcome.DISCARD
    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
    for key, value in changed.items():
        setattr(row, key, value)
    result = _result(row)
    if row.result != result:
        row.result = changed["result"] = result
    spans = [(iv.start_step, iv.end_step) for iv in row.interventions]
    wanted = [tuple(span) for span in meta.interventions]
    if spans != wanted:
        row.interventions = [
            m.Intervention(start_step=a, end_step=b, operator=meta.operator) for a, b in wanted
        ]
        changed["interventions"] = wanted
    return bool(changed)
