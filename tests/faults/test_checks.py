"""The fault suite's episode check can fail: it flags a missing, short or wrongly complete
episode and accepts an interrupted one within the allowance (no processes: fast)."""

from __future__ import annotations

from pathlib import Path

from server.store import EpisodeStore
from tandem.cli.operator.script import EpisodeReport
from tests.faults.chaos import ALLOWANCE, check_one
from tests.server.store._support import write_episode


def report(episode_id: str, steps: int, finished: bool) -> EpisodeReport:
    return EpisodeReport(
        episode_id, "demo", steps=steps, end_reason="success" if finished else None
    )


def test_finished_episode_must_be_stored_whole(tmp_path: Path) -> None:
    store = EpisodeStore(None, tmp_path)
    try:
        write_episode(store, "robot0-ep1", n=5)
        assert check_one(store, report("robot0-ep1", 5, finished=True)) is None
        assert "stored 5" in str(check_one(store, report("robot0-ep1", 6, finished=True)))
        assert "not stored" in str(check_one(store, report("robot0-nope", 5, finished=True)))
    finally:
        store.close()


def test_interrupted_episode_loses_at_most_the_allowance(tmp_path: Path) -> None:
    store = EpisodeStore(None, tmp_path)
    try:
        write_episode(store, "robot0-cut", n=5, finish=False)
        store.reconcile()  # as after a server crash: finished, marked incomplete
        assert check_one(store, report("robot0-cut", 5 + ALLOWANCE, finished=False)) is None
        too_many = check_one(store, report("robot0-cut", 6 + ALLOWANCE, finished=False))
        assert "steps lost" in str(too_many)
        assert "incomplete" in str(check_one(store, report("robot0-cut", 5, finished=True)))
    finally:
        store.close()
