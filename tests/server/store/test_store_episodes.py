"""EpisodeStore CRUD, filters, pagination and file access, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from server.db.models import Episode as EpisodeRow
from server.store import ConflictError, EpisodeStore, NotFoundError
from tandem.episodes import load_episode
from tandem.messages import EpisodeKind, Outcome
from tests.server.store._support import CAMS, image, state, write_episode

pytestmark = pytest.mark.timeout(120)


def _populate(store: EpisodeStore) -> float:
    t0 = time.time() - 1000
    specs = [
        ("e0", "robot0", EpisodeKind.DEMO, "alice", Outcome.SUCCESS),
        ("e1", "robot0", EpisodeKind.ROLLOUT, "alice", Outcome.FAILURE),
        ("e2", "robot1", EpisodeKind.ROLLOUT, "bob", Outcome.SUCCESS),
        ("e3", "robot1", EpisodeKind.DEMO, "bob", None),
        ("e4", "robot0", EpisodeKind.DEMO, None, Outcome.SUCCESS),
    ]
    for i, (eid, robot, kind, op, outcome) in enumerate(specs):
        write_episode(store, eid, robot=robot, kind=kind, operator=op, outcome=outcome,
                      started=t0 + 100 * i, n=3 + i)  # fmt: skip
    return t0


def _ids(page: tuple[list, int]) -> list[str]:
    return [e.id for e in page[0]]


def test_filters_and_pagination(store: EpisodeStore) -> None:
    t0 = _populate(store)
    assert _ids(store.list_episodes()) == ["e4", "e3", "e2", "e1", "e0"]
    assert store.list_episodes()[1] == 5
    assert _ids(store.list_episodes(robot="robot1")) == ["e3", "e2"]
    assert _ids(store.list_episodes(kind="rollout")) == ["e2", "e1"]
    assert _ids(store.list_episodes(kind=EpisodeKind.DEMO, outcome="success")) == ["e4", "e0"]
    assert _ids(store.list_episodes(outcome="unlabeled")) == ["e3"]
    assert _ids(store.list_episodes(operator="bob")) == ["e3", "e2"]
    since = datetime.fromtimestamp(t0 + 150, UTC)
    until = datetime.fromtimestamp(t0 + 350, UTC)
    assert _ids(store.list_episodes(since=since, until=until)) == ["e3", "e2"]
    assert _ids(store.list_episodes(complete=True)) == ["e4", "e3", "e2", "e1", "e0"]
    assert store.list_episodes(complete=False)[1] == 0
    page, total = store.list_episodes(offset=1, limit=2)
    assert [e.id for e in page] == ["e3", "e2"] and total == 5
    page, total = store.list_episodes(robot="robot0", offset=2, limit=2)
    assert [e.id for e in page] == ["e0"] and total == 3
    with pytest.raises(ValueError):
        store.list_episodes(limit=0)
    with pytest.raises(ValueError):
        store.list_episodes(outcome="maybe")


def test_row_fields_and_interventions(store: EpisodeStore) -> None:
    write_episode(store, "hg", kind=EpisodeKind.ROLLOUT, n=10, interventions=(3, 7))
    detail = store.get_episode("hg")
    assert detail.length == 10 and detail.complete and not detail.recording
    assert detail.intervention_count == 1 and detail.intervention_steps == 4
    assert [(i.start_step, i.end_step) for i in detail.interventions] == [(3, 7)]
    assert detail.episode_return == pytest.approx(1.0)
    assert detail.terminated and not detail.truncated and detail.end_reason == "success"
    assert detail.started_at.tzinfo is not None and detail.ended_at is not None
    assert detail.path == "robot0/hg"
    with pytest.raises(NotFoundError):
        store.get_episode("nope")


def test_label_annotate_discard_restore(store: EpisodeStore) -> None:
    write_episode(store, "a", outcome=None)
    out = store.label("a", "failure", "carol")
    assert out.outcome == Outcome.FAILURE and out.labeled_by == "carol" and not out.discarded
    assert store.annotate("a", "gripper slipped").notes == "gripper slipped"
    assert store.discard("a").discarded
    assert _ids(store.list_episodes(discarded=False)) == []
    assert not store.restore("a").discarded
    assert store.label("a", Outcome.DISCARD, "carol").discarded
    assert store.get_episode("a").notes == "gripper slipped"
    with pytest.raises(ValueError):
        store.label("a", "great", "carol")
    with pytest.raises(NotFoundError):
        store.annotate("zzz", "x")


def test_delete_removes_files_and_rows(store: EpisodeStore) -> None:
    path = write_episode(store, "gone")
    keep = write_episode(store, "kept")
    store.delete("gone")
    assert not path.exists() and keep.exists()
    with pytest.raises(NotFoundError):
        store.get_episode("gone")
    assert _ids(store.list_episodes()) == ["kept"]
    with pytest.raises(NotFoundError):
        store.delete("gone")


def test_delete_refused_while_recording(store: EpisodeStore) -> None:
    write_episode(store, "live", finish=False)
    with pytest.raises(ConflictError):
        store.delete("live")


def test_load_and_frames(store: EpisodeStore) -> None:
    write_episode(store, "ep", n=7)
    episode = store.load("ep")
    assert len(episode) == 7 and set(episode.images) == set(CAMS)
    np.testing.assert_allclose(episode.steps["state"][3], state(3))
    assert store.load("ep", images=False).images == {}
    jpeg = store.frame_jpeg("ep", "wrist", 5)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert decoded.shape == (96, 96, 3)
    assert np.abs(decoded.astype(int) - image(5, 1).astype(int)).mean() < 6
    with pytest.raises(NotFoundError):
        store.frame_jpeg("ep", "wrist", 7)
    with pytest.raises(NotFoundError):
        store.frame_jpeg("ep", "side", 0)


def test_partial_episode_is_readable_while_recording(store: EpisodeStore) -> None:
    write_episode(store, "live", n=4, finish=False)
    row = store.get_episode("live")
    assert row.recording and not row.complete
    assert len(store.load("live")) == 4
    assert store.frame_jpeg("live", "front", 3)


def test_reconcile_recovers_and_agrees_with_files(store: EpisodeStore) -> None:
    done = write_episode(store, "done", n=5)
    before = {p.name: p.read_bytes() for p in done.iterdir()}
    write_episode(store, "crashed", n=6, finish=False)
    lost = write_episode(store, "lost", n=2)
    write_episode(store, "orphan", n=3)
    for p in lost.iterdir():
        p.unlink()
    lost.rmdir()
    with store.session() as s:  # a row lost (e.g. DB restored from an older backup)
        s.delete(s.get(EpisodeRow, "orphan"))
    report = store.reconcile()
    assert report.recovered == ["crashed"]
    assert report.removed == ["lost"] and report.added == ["orphan"]
    assert "crashed" in report.updated
    crashed = store.get_episode("crashed")
    assert crashed.length == 6 and not crashed.complete and not crashed.recording
    assert crashed.end_reason == "interrupted"
    assert load_episode(store.episodes_root / "robot0" / "crashed").meta.num_steps == 6
    assert store.get_episode("orphan").length == 3
    assert {p.name: p.read_bytes() for p in done.iterdir()} == before
    again = store.reconcile()
    assert not (again.recovered or again.added or again.updated or again.removed)


def test_reconcile_keeps_db_labels(store: EpisodeStore) -> None:
    write_episode(store, "x", outcome=Outcome.SUCCESS)
    store.label("x", Outcome.FAILURE, "dave")
    store.annotate("x", "relabelled")
    store.reconcile()
    row = store.get_episode("x")
    assert row.outcome == Outcome.FAILURE and row.notes == "relabelled"


def test_times_are_utc(store: EpisodeStore) -> None:
    t = 1_700_000_000.25
    write_episode(store, "t", started=t)
    row = store.get_episode("t")
    assert row.started_at == datetime.fromtimestamp(t, UTC)
    with store.session() as s:
        assert s.scalar(select(EpisodeRow.started_at)).tzinfo is not None
