"""A bridge restart whose first messages the recorder misses: real ZMQ on loopback, SQLite.

Regression (issue 17, defect 2): the tracker used to take a restart only from
``seq == 0``; when that message was missed, every later step of the restarted
bridge had ``seq <=`` the old run's last and was dropped as a duplicate.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from sqlalchemy import select

from robot_bridge.publisher import Publisher
from server.db.models import Robot
from server.recorder import Recorder
from server.store import EpisodeStore
from tandem.episodes import load_episode
from tandem.messages import (
    ActionSource,
    BridgeStatus,
    ControlMode,
    EpisodeEvent,
    EpisodeKind,
    Outcome,
    StepRecord,
)
from tests.server.store._support import CAMS, action, image, state, wait_until

pytestmark = pytest.mark.timeout(120)

ROBOT = "robot0"
RECONNECT_S = 2.0  # the recorder's ZMQ reconnect interval: the restarted bridge sends first


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EpisodeStore]:
    st = EpisodeStore(f"sqlite:///{tmp_path / 'tandem.db'}", tmp_path / "data")
    yield st
    st.close()


def _bind(endpoint: str, context: zmq.Context) -> Publisher:
    """A bridge process's publisher; the killed one's port may take a moment to free."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            return Publisher(endpoint, context)
        except zmq.ZMQError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _episode(pub: Publisher, episode_id: str, n: int) -> None:
    kind = EpisodeKind.DEMO
    pub.episode(EpisodeEvent(robot_id=ROBOT, episode_id=episode_id, episode_kind=kind,
                             event="start"))  # fmt: skip
    for i in range(n):
        rec = StepRecord(robot_id=ROBOT, episode_id=episode_id, episode_kind=kind, step=i,
                         mode=ControlMode.TELEOP, state=state(i).tolist(), action=action(i),
                         action_source=ActionSource.HUMAN, reward=float(i == n - 1),
                         t_obs=time.monotonic())  # fmt: skip
        pub.step(rec, {cam: image(i, k) for k, cam in enumerate(CAMS)})
    end = EpisodeEvent(robot_id=ROBOT, episode_id=episode_id, episode_kind=kind, event="end",
                       reason="success", outcome=Outcome.SUCCESS, num_steps=n, terminated=True,
                       final_state=state(n).tolist())  # fmt: skip
    pub.episode(end, {cam: image(n, k) for k, cam in enumerate(CAMS)})


def _wait_seen(pub: Publisher, store: EpisodeStore, spec: str) -> None:
    """Publish status until the recorder has stored ``spec`` (it is subscribed then)."""

    def seen() -> bool:
        pub.status(BridgeStatus(robot_id=ROBOT, robot=spec, mode=ControlMode.IDLE))
        with store.session() as s:
            robot = s.scalar(select(Robot).where(Robot.id == ROBOT))
            return robot is not None and robot.spec == spec

    wait_until(seen, 20.0, f"recorder to see {spec}")


def _finished(store: EpisodeStore, episode_id: str) -> bool:
    return store.has_episode(episode_id) and not store.get_episode(episode_id).recording


def test_restarted_bridge_whose_first_messages_are_missed_is_recorded(
    store: EpisodeStore,
) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    rec_ctx, bridge_ctx = zmq.Context(), zmq.Context()
    rec_ctx.setsockopt(zmq.RECONNECT_IVL, int(RECONNECT_S * 1000))
    recorder = Recorder(store, [endpoint], flush_every_s=0.5, context=rec_ctx)
    recorder.start()
    try:
        first = _bind(endpoint, bridge_ctx)
        _wait_seen(first, store, "sim:lift")
        _episode(first, "before", 30)  # step seq 0..29, episode seq 0..1
        wait_until(lambda: _finished(store, "before"), what="episode before the restart")
        first.close()  # the bridge is killed ...
        second = _bind(endpoint, bridge_ctx)  # ... and restarted before the recorder reconnects
        _episode(second, "lost", 5)  # nobody subscribed yet: step seq 0..4, episode 0..1 lost
        _wait_seen(second, store, "sim:lift/restarted")
        _episode(second, "after", 12)  # step seq 5..16 (<= 29), episode seq 2..3
        wait_until(lambda: _finished(store, "after"), what="episode after the restart")
        second.close()
    finally:
        recorder.stop()
        rec_ctx.term()
        bridge_ctx.term()

    assert not store.has_episode("lost"), "the restarted bridge's first messages were not missed"
    row = store.get_episode("after")
    assert row.length == 12 and row.complete and row.outcome == Outcome.SUCCESS
    episode = load_episode(store.episodes_root / ROBOT / "after")
    assert episode.steps["step"].tolist() == list(range(12))
    stats = recorder.stats()
    assert stats.duplicates == 0 and stats.steps == 30 + 12
    assert stats.restarts == 2 and stats.missing == 5 + 2  # step and episode streams
