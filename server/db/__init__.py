"""Database layer: typed ORM models, engine/session factory and Alembic migrations."""

from server.db.engine import default_database_url, make_engine, make_session_factory, migrate
from server.db.models import (
    AuthToken,
    Base,
    Episode,
    Intervention,
    LearnerRun,
    MetricPoint,
    OperatingSession,
    Operator,
    Reset,
    Robot,
    Role,
)

__all__ = [
    "AuthToken",
    "Base",
    "Episode",
    "Intervention",
    "LearnerRun",
    "MetricPoint",
    "OperatingSession",
    "Operator",
    "Reset",
    "Robot",
    "Role",
    "default_database_url",
    "make_engine",
    "make_session_factory",
    "migrate",
]
