"""Recorder end to end: real ZMQ PUB sockets on loopback, real files, real database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.recorder import Recorder
from server.store import EpisodeStore
from tandem.episodes import load_episode, read_meta
from tandem.messages import EpisodeKind, Outcome
from tests.server.store._support import CAMS, FakeBridge, image, state, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def bridges() -> Iterator[list[FakeBridge]]:
    made = [FakeBridge("robot0"), FakeBridge("robot1")]
    yield made
    for b in made:
        b.close()


@pytest.fixture
def recording(store: EpisodeStore, bridges: list[FakeBridge]) -> Iterator[Recorder]:
    rec = Recorder(store, [b.endpoint for b in bridges], flush_every_s=0.5)
    rec.start()
    for b in bridges:
        b.wait_connected(store)
    yield rec
    rec.stop()
    assert not rec.running


def _finished(store: EpisodeStore, episode_id: str) -> bool:
    return store.has_episode(episode_id) and not store.get_episode(episode_id).recording


def test_records_two_bridges(
    store: EpisodeStore, recording: Recorder, bridges: list[FakeBridge]
) -> None:
    b0, b1 = bridges
    b0.start("demo0")
    b1.start("roll1", EpisodeKind.ROLLOUT)
    for i in range(12):
        b0.step("demo0", i, reward=1.0 if i == 11 else 0.0)
        b1.step("roll1", i, kind=EpisodeKind.ROLLOUT, intervention=4 <= i < 8)
    b0.end("demo0", 12)
    b1.end("roll1", 12, kind=EpisodeKind.ROLLOUT, outcome=None, reason="time_limit")
    wait_until(lambda: _finished(store, "demo0") and _finished(store, "roll1"), what="episodes")

    demo = store.get_episode("demo0")
    assert demo.length == 12 and demo.complete and demo.outcome == Outcome.SUCCESS
    assert demo.terminated and demo.end_reason == "success" and demo.episode_return == 1.0
    assert demo.task == "sim:lift"
    roll = store.get_episode("roll1")
    assert roll.kind == EpisodeKind.ROLLOUT and roll.truncated and not roll.terminated
    assert roll.outcome is None and roll.complete
    assert [(i.start_step, i.end_step) for i in roll.interventions] == [(4, 8)]

    episode = load_episode(store.episodes_root / "robot0" / "demo0")
    assert len(episode) == 12 and episode.meta.complete
    np.testing.assert_allclose(episode.steps["state"][7], state(7))
    assert episode.steps["step"].tolist() == list(range(12))
    for k, cam in enumerate(CAMS):  # JPEG on the wire: close, not exact
        err = np.abs(episode.images[cam][5].astype(int) - image(5, k).astype(int)).mean()
        assert err < 6
    np.testing.assert_allclose(episode.final["state"], state(12))
    assert episode.final["cam_front"].shape == (96, 96, 3)
    assert recording.stats().steps == 24 and recording.stats().episodes_finished == 2


def test_row_at_start_and_flushes_while_open(
    store: EpisodeStore, recording: Recorder, bridges: list[FakeBridge]
) -> None:
    b0 = bridges[0]
    b0.start("long")
    wait_until(lambda: store.has_episode("long"), what="row at start")
    row = store.get_episode("long")
    assert row.recording and not row.complete
    for i in range(5):
        b0.step("long", i)
    partial = store.episodes_root / "robot0" / "long.partial"
    # No more steps arrive: the recorder still flushes them within flush_every_s.

    def flushed() -> bool:
        return (partial / "meta.json").exists() and len(load_episode(partial)) == 5

    wait_until(flushed, timeout=3, what="flushed steps")
    wait_until(lambda: store.get_episode("long").length == 5, timeout=3, what="progress row")
    b0.end("long", 5)
    wait_until(lambda: _finished(store, "long"), what="finish")
    assert not partial.exists() and store.get_episode("long").complete


def test_label_after_end_updates_db_only(
    store: EpisodeStore, recording: Recorder, bridges: list[FakeBridge]
) -> None:
    b0 = bridges[0]
    b0.episode("lab", 3, outcome=None, reason="safety_stop")
    wait_until(lambda: _finished(store, "lab"), what="finish")
    path = store.episodes_root / "robot0" / "lab"
    files = {p.name: p.read_bytes() for p in path.iterdir()}
    b0.event("lab", "label", reason="relabel", outcome=Outcome.FAILURE, operator="ann")
    wait_until(lambda: store.get_episode("lab").outcome == Outcome.FAILURE, what="label")
    assert store.get_episode("lab").labeled_by == "ann"
    assert {p.name: p.read_bytes() for p in path.iterdir()} == files
    assert read_meta(path).outcome is None


def test_gaps_are_counted_and_mark_incomplete(
    store: EpisodeStore, recording: Recorder, bridges: list[FakeBridge]
) -> None:
    b0 = bridges[0]
    b0.start("gappy")
    for i in range(10):
        if i in (3, 4, 7):
            b0.seq.next("step")  # the bridge sent it; we lose it
            continue
        b0.step("gappy", i)
    b0.step("gappy", 9, seq=b0.seq.next("step") - 1)  # a duplicate of the last one
    b0.end("gappy", 10)
    wait_until(lambda: _finished(store, "gappy"), what="finish")
    stats = recording.stats()
    assert stats.gaps == 2 and stats.missing == 3 and stats.duplicates == 1
    row = store.get_episode("gappy")
    assert row.length == 7 and not row.complete
    assert load_episode(store.episodes_root / "robot0" / "gappy").steps["step"].tolist() == [
        0, 1, 2, 5, 6, 8, 9,
    ]  # fmt: skip


def test_malformed_messages_do_not_stop_it(
    store: EpisodeStore, recording: Recorder, bridges: list[FakeBridge]
) -> None:
    b0 = bridges[0]
    garbage = [
        [b"step", b"{not json"],
        [b"step", b'{"v": 1}'],
        [b"episode", b'{"v": 99}'],
        [b"step"],
        [b"\xff\xfe", b"{}"],
    ]
    b0.start("robust")
    for i in range(6):
        b0.sock.send_multipart(garbage[i % len(garbage)])
        b0.step("robust", i)
    bad = b0.seq.next("step")  # a step whose frame lies about its size
    from tandem.messages import ActionSource, ControlMode, StepRecord
    from tandem.wire import encode

    rec = StepRecord(seq=bad, robot_id="robot0", episode_id="robust", episode_kind="demo",
                     step=6, mode=ControlMode.TELEOP, state=state(6).tolist(), action=[0.0] * 7,
                     action_source=ActionSource.HUMAN, t_obs=0.0)  # fmt: skip
    parts = encode(rec, {"cam/front": image(6, 0), "cam/wrist": image(6, 1)}, jpeg=["cam/front"])
    b0.sock.send_multipart([*parts[:-1], parts[-1][:100]])
    b0.step("robust", 7)
    b0.end("robust", 8)
    wait_until(lambda: _finished(store, "robust"), what="finish")
    stats = recording.stats()
    assert stats.malformed == 6 and recording.running
    row = store.get_episode("robust")
    assert row.length == 7 and not row.complete  # step 6 was lost as malformed


def test_steps_of_a_stored_episode_are_ignored(
    store: EpisodeStore, recording: Recorder, bridges: list[FakeBridge]
) -> None:
    b0 = bridges[0]
    b0.episode("once", 3)
    wait_until(lambda: _finished(store, "once"), what="finish")
    path = store.episodes_root / "robot0" / "once"
    files = {p.name: p.read_bytes() for p in path.iterdir()}
    for i in range(3, 6):
        b0.step("once", i)
    b0.episode("next", 2)
    wait_until(lambda: _finished(store, "next"), what="next episode")
    assert {p.name: p.read_bytes() for p in path.iterdir()} == files
    assert recording.stats().dropped_steps == 3


def test_stop_finishes_open_episode_incomplete(store: EpisodeStore, tmp_path: Path) -> None:
    bridge = FakeBridge("robot0")
    rec = Recorder(store, [bridge.endpoint])
    rec.start()
    try:
        bridge.wait_connected(store)
        bridge.start("cut")
        for i in range(4):
            bridge.step("cut", i)
        wait_until(lambda: rec.stats().steps == 4, what="steps")
    finally:
        rec.stop()
        bridge.close()
    row = store.get_episode("cut")
    assert row.length == 4 and not row.complete and row.end_reason == "recorder_stopped"
    assert len(load_episode(store.episodes_root / "robot0" / "cut")) == 4


def test_needs_an_endpoint(store: EpisodeStore) -> None:
    with pytest.raises(ValueError):
        Recorder(store, [])


def test_unsafe_ids_are_refused(
    store: EpisodeStore, recording: Recorder, bridges: list[FakeBridge]
) -> None:
    b0 = bridges[0]
    b0.start("../escape")
    b0.step("../escape", 0)
    b0.episode("fine", 2)
    wait_until(lambda: _finished(store, "fine"), what="next episode")
    assert recording.stats().malformed == 2
    assert not store.has_episode("../escape")
    assert not (store.episodes_root / "escape").exists()


def test_app_reads_and_writes_while_recording(
    store: EpisodeStore, recording: Recorder, bridges: list[FakeBridge]
) -> None:
    """The HTTP app and the recorder thread share one store (and one SQLite file)."""
    errors: list[BaseException] = []
    halt = threading.Event()

    def app() -> None:
        while not halt.is_set():
            try:
                for row in store.list_episodes(limit=10)[0]:
                    store.annotate(row.id, "seen")
                    store.get_episode(row.id)
            except BaseException as exc:  # collected and re-raised in the test thread
                errors.append(exc)
                return

    worker = threading.Thread(target=app)
    worker.start()
    try:
        for k in range(6):
            bridges[k % 2].episode(f"c{k}", 15)
        wait_until(lambda: all(_finished(store, f"c{k}") for k in range(6)), what="episodes")
    finally:
        halt.set()
        worker.join(10)
    assert not errors, errors
    assert recording.stats().errors == 0
    assert all(store.get_episode(f"c{k}").length == 15 for k in range(6))


def test_an_episode_cut_short_is_never_made_a_success_by_the_bridge(
    store: EpisodeStore, tmp_path: Path
) -> None:
    """The recorder stops mid-demo (a crash or restart); the bridge's late end event and
    success label must not turn the cut-short episode into a full demo. Failure labels
    still apply, and a person can relabel it through the API (store.label)."""
    bridge = FakeBridge("robot0")
    try:
        first = Recorder(store, [bridge.endpoint], flush_every_s=0.2)
        first.start()
        bridge.wait_connected(store)
        bridge.start("cut")
        for i in range(4):
            bridge.step("cut", i)
        wait_until(lambda: first.stats().steps == 4, what="steps")
        first.stop()
        second = Recorder(store, [bridge.endpoint], flush_every_s=0.2)
        second.start()
        bridge.wait_connected(store)
        bridge.end("cut", 10)  # the bridge finished the demo while nobody recorded
        bridge.event("cut", "label", reason="relabel", outcome=Outcome.SUCCESS, operator="ann")
        wait_until(lambda: second.stats().refused_labels == 2, what="the refused labels")
        row = store.get_episode("cut")
        assert not row.complete and row.outcome is None
        demos = store.list_episodes(kind=EpisodeKind.DEMO, outcome=Outcome.SUCCESS)
        assert "cut" not in [e.id for e in demos[0]]
        bridge.event("cut", "label", reason="relabel", outcome=Outcome.FAILURE, operator="ann")
        wait_until(lambda: store.get_episode("cut").outcome == Outcome.FAILURE, what="failure")
        second.stop()
    finally:
        bridge.close()
    assert store.label("cut", Outcome.SUCCESS, "ann").outcome == Outcome.SUCCESS  # a person
