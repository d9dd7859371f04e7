"""Operators, tokens, resets, metrics history and migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from server.db.engine import alembic_config, make_engine, migrate
from server.db.models import AuthToken, Base, Operator, Role
from server.store import ConflictError, NotFoundError, Store

pytestmark = pytest.mark.timeout(120)


def test_operators_and_passwords(stores: Store) -> None:
    alice = stores.auth.create_operator("alice", "operator", "s3cret-pw")
    stores.auth.create_operator("vic", Role.VIEWER, "viewpw")
    assert alice.role == Role.OPERATOR and alice.id > 0
    with pytest.raises(ConflictError):
        stores.auth.create_operator("alice", "viewer", "other")
    with pytest.raises(ValueError):
        stores.auth.create_operator("eve", "admin", "pw")
    assert stores.auth.verify_password("alice", "s3cret-pw") == alice
    assert stores.auth.verify_password("alice", "wrong") is None
    assert stores.auth.verify_password("nobody", "s3cret-pw") is None
    assert stores.auth.verify_password("vic", "viewpw").role == Role.VIEWER  # type: ignore[union-attr]
    with stores.session() as s:
        stored = s.scalar(select(Operator.password_hash).where(Operator.name == "alice"))
    assert stored.startswith("$argon2") and "s3cret-pw" not in stored
    assert [o.name for o in stores.auth.list_operators()] == ["alice", "vic"]


def test_tokens(stores: Store) -> None:
    op = stores.auth.create_operator("alice", "operator", "pw")
    token = stores.auth.issue_token(op.id, ttl_s=60)
    assert stores.auth.resolve_token(token) == op
    assert stores.auth.resolve_token(token) == op  # reusable until it expires
    assert stores.auth.resolve_token("not-a-token") is None
    with stores.session() as s:
        hashes = s.scalars(select(AuthToken.token_hash)).all()
    assert token not in hashes and all(len(h) == 64 for h in hashes)
    expired = stores.auth.issue_token(op.id, ttl_s=-1)
    assert stores.auth.resolve_token(expired) is None
    once = stores.auth.issue_token(op.id, ttl_s=60, one_time=True)
    assert stores.auth.resolve_token(once) == op
    assert stores.auth.resolve_token(once) is None
    assert stores.auth.revoke_token(token) and stores.auth.resolve_token(token) is None
    with pytest.raises(NotFoundError):
        stores.auth.issue_token(9999, ttl_s=60)


def test_default_operator(stores: Store) -> None:
    op, token = stores.auth.ensure_default_operator()
    assert op.name == "admin" and op.role == Role.OPERATOR
    again, token2 = stores.auth.ensure_default_operator()
    assert again == op and token2 != token
    assert stores.auth.resolve_token(token) == op and stores.auth.resolve_token(token) is None
    assert len(stores.auth.list_operators()) == 1


def test_resets(stores: Store) -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    r = stores.activity.record_reset("robot0", t, t + timedelta(seconds=12.5))
    assert r.duration_s == pytest.approx(12.5) and r.done_at == t + timedelta(seconds=12.5)
    pending = stores.activity.record_reset("robot0", t + timedelta(minutes=1))
    assert pending.done_at is None and pending.duration_s is None
    assert [x.id for x in stores.activity.list_resets("robot0")] == [pending.id, r.id]
    assert stores.activity.list_resets("robot9") == []


def test_metrics_downsampled(stores: Store) -> None:
    for i in range(10):  # 0.0, 0.5, ..., 4.5 s
        stores.metrics.record_metrics("run1", 1000.0 + 0.5 * i, {"critic/loss": float(i), "x": 1.0})
    stores.metrics.record_metrics("run1", 1005.0, {"critic/loss": float("nan"), "y": float("inf")})
    # a metric without a value yet (None on the wire) does not cost the others their point
    stores.metrics.record_metrics("run1", 1006.0, {"pending": None, "z": 2.0})
    history = stores.metrics.metrics_history("run1")
    assert "pending" not in history and history["z"] == [(1006.0, 2.0)]
    assert [t for t, _ in history["critic/loss"]] == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
    assert [v for _, v in history["critic/loss"]] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert "y" not in history
    only = stores.metrics.metrics_history("run1", names=["x"], since=1002.0)
    assert list(only) == ["x"] and [t for t, _ in only["x"]] == [1002.0, 1003.0, 1004.0]
    thin = stores.metrics.metrics_history("run1", names=["critic/loss"], max_points=2)
    assert len(thin["critic/loss"]) <= 2
    assert [r.id for r in stores.metrics.list_runs()] == ["run1"]
    assert stores.metrics.metrics_history("other") == {}


def test_sessions(stores: Store) -> None:
    op = stores.auth.create_operator("alice", "operator", "pw")
    sid = stores.activity.open_session(op.id, "robot0")
    stores.activity.close_session(sid)
    with pytest.raises(NotFoundError):
        stores.activity.close_session(sid + 100)


def test_migrations_match_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)  # idempotent
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            if engine.dialect.name == "sqlite":
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        command.downgrade(alembic_config(engine), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(engine)
        assert "episodes" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
