"""Honest results in the store (SQLite and PostgreSQL): an episode a human helped finish is
never an autonomous success; evaluation batches keep their weights version and env steps."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from server.db.engine import alembic_config, make_engine
from server.store import EpisodeStore, Store
from tandem.messages import EpisodeKind, Outcome
from tests.server.store._support import write_episode

pytestmark = pytest.mark.timeout(120)


def result_of(store: EpisodeStore, episode_id: str) -> tuple[str | None, bool]:
    row = store.get_episode(episode_id)
    return (None if row.result is None else row.result.value), row.autonomous_success


def test_assisted_success_is_never_autonomous(store: EpisodeStore) -> None:
    rollout = EpisodeKind.ROLLOUT
    write_episode(store, "alone", kind=rollout, n=6, outcome=None)
    write_episode(store, "helped", kind=rollout, n=6, outcome=None, interventions=(2, 5))
    write_episode(store, "lost", kind=rollout, n=6, outcome=None, success=False)
    write_episode(store, "demo", kind=EpisodeKind.DEMO, n=6, interventions=(0, 6))
    assert result_of(store, "alone") == ("autonomous_success", True)
    assert result_of(store, "helped") == ("assisted_success", False)
    assert store.get_episode("helped").intervention_steps == 3
    assert result_of(store, "lost") == ("failure", False)
    assert result_of(store, "demo") == (None, False)

    # Labelled success by the operator: still assisted, because a human drove steps.
    store.label("helped", Outcome.SUCCESS, "alice")
    assert result_of(store, "helped") == ("assisted_success", False)
    # The operator's label counts over the task's success signal, both ways.
    store.label("alone", Outcome.FAILURE, "alice")
    assert result_of(store, "alone") == ("failure", False)
    store.label("lost", Outcome.SUCCESS, "alice")
    assert result_of(store, "lost") == ("autonomous_success", True)
    store.discard("lost")
    assert result_of(store, "lost") == (None, False)
    store.restore("lost")
    assert result_of(store, "lost") == ("autonomous_success", True)

    page, total = store.list_episodes(result="assisted_success")
    assert [e.id for e in page] == ["helped"] and total == 1
    # Reconciling from the files keeps the result (the label lives in the database).
    store.reconcile()
    assert result_of(store, "helped") == ("assisted_success", False)


def test_eval_batches_keep_weights_version_and_env_steps(
    store: EpisodeStore, stores: Store
) -> None:
    t = time.time() - 100
    # The learner's metrics history: version 3 published at 1200 env steps, version 4 at 2500.
    for i, (version, env_steps) in enumerate([(2, 800), (3, 1200), (3, 1300), (4, 2500)]):
        metrics: dict[str, float | None] = {
            "weights/version": version,
            "learner/env_steps": env_steps,
        }
        stores.metrics.record_metrics("run-a", t + 2 * i, metrics)
    evaluation = EpisodeKind.EVALUATION
    for i, (success, human) in enumerate([(True, None), (False, None), (True, (1, 3))]):
        extra = {"weights_version": 3, "eval_batch": "b1", "eval_index": i + 1}
        write_episode(store, f"b1-{i}", kind=evaluation, n=5, outcome=None, success=success,
                      interventions=human, extra=extra, started=t + 10 + i)  # fmt: skip
    extra = {"weights_version": 4, "eval_batch": "b2", "eval_index": 1}
    write_episode(store, "b2-0", kind=evaluation, n=5, outcome=None, extra=extra, started=t + 20)
    row = store.get_episode("b1-0")
    assert (row.weights_version, row.env_steps, row.eval_batch, row.eval_index) == (
        3,
        1200,
        "b1",
        1,
    )
    # A human in an evaluation episode makes it a failure, even when it succeeded.
    assert result_of(store, "b1-2") == ("failure", False)

    b1, b2 = stores.evals.list_evals()
    assert (b1.batch, b1.episodes, b1.successes, b1.success_rate) == (
        "b1",
        3,
        1,
        pytest.approx(1 / 3),
    )
    assert (b1.weights_version, b1.env_steps, b1.weights_versions) == (3, 1200, [3])
    assert (b2.batch, b2.successes, b2.env_steps, b2.weights_version) == ("b2", 1, 2500, 4)
    assert stores.evals.list_evals(robot="nobody") == []


def test_env_steps_filled_later_when_metrics_arrive_late(
    store: EpisodeStore, stores: Store
) -> None:
    extra = {"weights_version": 9, "eval_batch": "late", "eval_index": 1}
    write_episode(store, "late-0", kind=EpisodeKind.EVALUATION, n=4, outcome=None, extra=extra)
    assert store.get_episode("late-0").env_steps is None  # no metrics for version 9 yet
    stores.metrics.record_metrics(
        "run-b", time.time(), {"weights/version": 9, "learner/env_steps": 4321}
    )
    (batch,) = stores.evals.list_evals()
    assert batch.env_steps == 4321
    assert store.get_episode("late-0").env_steps == 4321


def test_migration_backfills_results_of_old_rows(tmp_path) -> None:
    """A database recorded before revision 0002 gets its results computed on upgrade."""
    from alembic import command

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config(engine)
    command.upgrade(config, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO robots (id, created_at) VALUES ('r', '2026-01-01')"))
        for eid, kind, success, outcome, human in [
            ("a", "rollout", 1, None, 0),
            ("b", "rollout", 1, None, 4),
            ("c", "rollout", 1, "failure", 0),
            ("d", "demo", 1, "success", 10),
        ]:
            conn.execute(
                text(
                    "INSERT INTO episodes (id, robot_id, kind, started_at, length, outcome,"
                    " episode_return, success, intervention_count, intervention_steps, discarded,"
                    " notes, path, recording, complete, terminated, truncated) VALUES (:id, 'r',"
                    " :kind, '2026-01-01', 10, :outcome, 0, :success, 0, :human, 0, '', :id, 0, 1,"
                    " 0, 0)"
                ),
                {"id": eid, "kind": kind, "success": success, "outcome": outcome, "human": human},
            )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, result FROM episodes")).all())
    engine.dispose()
    assert rows == {"a": "autonomous_success", "b": "assisted_success", "c": "failure", "d": None}


def test_invalid_extra_in_metadata_is_ignored(store: EpisodeStore) -> None:
    """A hand-edited meta.json with nonsense in ``extra`` must not stop the store."""
    bad = {"weights_version": "seven", "eval_batch": 5, "eval_index": True}
    write_episode(store, "odd", kind=EpisodeKind.ROLLOUT, n=3, outcome=None, extra=bad)
    row = store.get_episode("odd")
    assert (row.weights_version, row.eval_batch, row.eval_index) == (None, None, None)
    assert row.result is not None and row.result.value == "autonomous_success"
    store.reconcile()  # reading the same metadata from the files again
    assert store.get_episode("odd").weights_version is None
