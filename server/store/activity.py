"""What happened on each robot: operating sessions (who held control) and scene resets."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from server.db import models as m
from server.db.schemas import ResetOut
from server.store.database import Database
from server.store.errors import NotFoundError
from server.store.rows import ensure_robot


class ActivityStore:
    """Operating sessions and scene resets."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open_session(self, operator_id: int | None, robot_id: str | None) -> int:
        with self.db.session() as s:
            if robot_id is not None:
                ensure_robot(s, robot_id)
            row = m.OperatingSession(operator_id=operator_id, robot_id=robot_id)
            s.add(row)
            s.flush()
            return row.id

    def close_session(self, session_id: int) -> None:
        with self.db.session() as s:
            row = s.get(m.OperatingSession, session_id)
            if row is None:
                raise NotFoundError(f"no session {session_id}")
            row.ended_at = datetime.now(UTC)

    def record_reset(
        self, robot: str, requested: datetime, done: datetime | None = None
    ) -> ResetOut:
        """Log one scene reset (``done`` None while the operator is still resetting)."""
        with self.db.session() as s:
            ensure_robot(s, robot)
            duration = None if done is None else (done - requested).total_seconds()
            row = m.Reset(robot_id=robot, requested_at=requested, done_at=done, duration_s=duration)
            s.add(row)
            s.flush()
            return ResetOut.model_validate(row)

    def list_resets(self, robot: str | None = None, limit: int = 100) -> list[ResetOut]:
        query = select(m.Reset).order_by(m.Reset.requested_at.desc()).limit(limit)
        if robot is not None:
            query = query.where(m.Reset.robot_id == robot)
        with self.db.session() as s:
            return [ResetOut.model_validate(r) for r in s.scalars(query).all()]
