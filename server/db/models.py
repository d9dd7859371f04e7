"""SQLAlchemy 2 typed ORM models of the server database.

Times are timezone-aware UTC ``datetime`` values (stored naive-UTC on SQLite).
Episode ids are the bridge's episode ids (unique across robots); bulk arrays
and frames live in files under ``<data_dir>/episodes/<path>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    OPERATOR = "operator"
    VIEWER = "viewer"


class Base(DeclarativeBase):
    pass


class Robot(Base):
    __tablename__ = "robots"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16), default=Role.OPERATOR.value)
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthToken(Base):
    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    one_time: Mapped[bool] = mapped_column(Boolean, default=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    operator: Mapped[Operator] = relationship()


class OperatingSession(Base):
    """A stretch of time an operator drove a robot (opened and closed by the app)."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    robot_id: Mapped[str | None] = mapped_column(ForeignKey("robots.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Episode(Base):
    __tablename__ = "episodes"
    __table_args__ = (
        Index("ix_episodes_robot_started", "robot_id", "started_at"),
        Index("ix_episodes_started", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    robot_id: Mapped[str] = mapped_column(ForeignKey("robots.id"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str | None] = mapped_column(String(128), index=True)
    task: Mapped[str | None] = mapped_column(String(256))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    length: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(16), index=True)
    labeled_by: Mapped[str | None] = mapped_column(String(128))
    episode_return: Mapped[float] = mapped_column(Float, default=0.0)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    intervention_count: Mapped[int] = mapped_column(Integer, default=0)
    intervention_steps: Mapped[int] = mapped_column(Integer, default=0)
    discarded: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str] = mapped_column(Text, default="")
    path: Mapped[str] = mapped_column(String(512))
    recording: Mapped[bool] = mapped_column(Boolean, default=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    terminated: Mapped[bool] = mapped_column(Boolean, default=False)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # Policy episodes: autonomous_success, assisted_success or failure (tandem.messages.
    # episode_result, with the operator's label); None for demos and discarded episodes.
    result: Mapped[str | None] = mapped_column(String(24), index=True)
    weights_version: Mapped[int | None] = mapped_column(Integer)
    env_steps: Mapped[int | None] = mapped_column(Integer)
    eval_batch: Mapped[str | None] = mapped_column(String(128), index=True)
    eval_index: Mapped[int | None] = mapped_column(Integer)

    interventions: Mapped[list[Intervention]] = relationship(
        back_populates="episode",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Intervention.start_step",
    )


class Intervention(Base):
    __tablename__ = "interventions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[str] = mapped_column(
        ForeignKey("episodes.id", ondelete="CASCADE"), index=True
    )
    start_step: Mapped[int] = mapped_column(Integer)
    end_step: Mapped[int] = mapped_column(Integer)
    operator: Mapped[str | None] = mapped_column(String(128))

    episode: Mapped[Episode] = relationship(back_populates="interventions")


class Reset(Base):
    __tablename__ = "resets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot_id: Mapped[str] = mapped_column(ForeignKey("robots.id"), index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_s: Mapped[float | None] = mapped_column(Float)


class LearnerRun(Base):
    __tablename__ = "learner_runs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    method: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MetricPoint(Base):
    """One downsampled metric value: ``t`` is the sender's wall time (Unix seconds)."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_name_t", "run_id", "name", "t"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("learner_runs.id", ondelete="CASCADE"))
    t: Mapped[float] = mapped_column(Float)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
