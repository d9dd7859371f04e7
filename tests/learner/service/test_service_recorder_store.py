"""One write per step: with a recorder's store configured the learner keeps no ingest log of
its own, and a restarted learner rebuilds its replay from that store, losing nothing.

Real service objects: the ``OnlineLearner`` with its ingest thread subscribed to a
stand-in bridge (an XPUB socket); the recorder is stood in for by the episode-format
writer the e2e stand-in uses, writing ``<data_dir>/episodes`` as the server's does.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from learner.service.sources import IngestLog
from learner.service.trainer import OnlineLearner
from tandem.messages import EpisodeEvent, EpisodeKind, Outcome, StepRecord
from tandem.settings import load_settings
from tandem.settings.learner_service import LearnerServiceSettings
from tests.learner.service.helpers import Bridge, end, start, step
from tests.polling import wait_for

pytestmark = pytest.mark.timeout(180)
Msg = tuple[StepRecord | EpisodeEvent, dict]


class Robot:
    """Publishes episodes on a bridge socket; the 'recorder' stores what it publishes."""

    def __init__(self, bridge: Bridge, store: Path) -> None:
        self.bridge, self.recorder = bridge, IngestLog(store, 0.0)
        self.step_seq, self.event_seq = itertools.count(), itertools.count()
        self.published: dict[int, tuple[str, int]] = {}  # step seq -> (episode, step)

    def episode(self, name: str, n: int, kind: EpisodeKind, *, online: bool = True) -> None:
        msgs: list[Msg] = [start("r", name, seq=next(self.event_seq), kind=kind)]
        for t in range(n):
            seq = next(self.step_seq)
            msgs.append(step("r", name, t, seq=seq, kind=kind, terminated=t == n - 1))
            self.published[seq] = (name, t)
        msg, images = end("r", name, n, seq=next(self.event_seq), kind=kind, terminated=True)
        msgs.append((msg.model_copy(update={"outcome": Outcome.SUCCESS}), images))
        for rec, imgs in msgs:  # the recorder always gets it; the learner only while up
            if isinstance(rec, StepRecord):
                self.recorder.on_step(rec, imgs)
            elif rec.event == "end":
                self.recorder.on_end(rec, imgs)
        if online:
            self.bridge.send(msgs)


@pytest.fixture
def bridge() -> Iterator[Bridge]:
    ctx = zmq.Context()
    bridge = Bridge(ctx)
    try:
        yield bridge
    finally:
        bridge.sock.close()
        ctx.term()


def _learner(data: Path, bridge: Bridge, *, resume: bool) -> OnlineLearner:
    learner = {
        "device": "cpu", "obs": "state", "threads": 1, "hidden_dim": 16, "batch_size": 8,
        "min_buffer": 8, "bc_steps": 5, "bc_hidden_dim": 16, "update_freq": 1,
        "num_critic_updates": 1, "online_min_demos": 1, "bridges": [bridge.endpoint],
        "weights_endpoint": "tcp://127.0.0.1:*", "metrics_endpoint": "tcp://127.0.0.1:*",
        "logger": "none",
    }  # fmt: skip
    settings = load_settings(None, data_dir=data, learner=learner)
    svc = LearnerServiceSettings(
        recorder_store=data / "episodes", min_transitions=8, label_grace_s=0.0,
        checkpoint_every_s=0.5, max_updates_per_s=1000,
    )  # fmt: skip
    return OnlineLearner(settings, svc, resume=resume)


def _run(learner: OnlineLearner, until, what: str) -> None:
    thread = threading.Thread(target=learner.run, daemon=True)
    thread.start()
    try:
        wait_for(until, 60, what)
    finally:
        learner.stop_event.set()
        thread.join(30)


def _held(learner: OnlineLearner) -> list[tuple[int, tuple[str, int]]]:
    """(seq, (episode, step)) of every transition in the stopped learner's replay index."""
    rows = json.loads((learner.run_dir / "replay_index.json").read_text())["rows"]
    return sorted((seq, (episode, step)) for _, episode, step, seq, _ in rows)


def test_with_a_recorder_store_no_ingest_log_and_resume_rebuilds_from_it(tmp_path, bridge):
    data = tmp_path / "data"
    robot = Robot(bridge, data / "episodes")
    first = _learner(data, bridge, resume=False)
    first.start()
    bridge.wait_subscribed()
    robot.episode("demo", 12, EpisodeKind.DEMO)
    robot.episode("roll-1", 12, EpisodeKind.ROLLOUT)
    _run(first, lambda: first.env_steps >= 24 and first.il is not None, "both live episodes")
    assert (first.run_dir / "checkpoint.pt").exists()
    assert not (first.run_dir / "ingest").exists()
    assert not list(first.run_dir.rglob("chunk_*.npz")), "the learner wrote steps of its own"

    robot.episode("roll-2", 10, EpisodeKind.ROLLOUT, online=False)  # while the learner is down
    again = _learner(data, bridge, resume=True)
    again.start()
    _run(again, lambda: again.data is not None and len(again.data) >= 34, "the store's episodes")
    assert again.progress.run_id == first.progress.run_id
    held = _held(again)
    assert held == sorted(robot.published.items())  # every published step, each once
    assert again.metrics()[2]["buffer/duplicates"] == 0
    assert not (again.run_dir / "ingest").exists()


def test_the_ingest_log_setting() -> None:
    store = Path("/data/episodes")
    assert LearnerServiceSettings().keeps_ingest_log  # no recorder: the learner keeps a log
    assert not LearnerServiceSettings(recorder_store=store).keeps_ingest_log
    assert LearnerServiceSettings(recorder_store=store, ingest_log="on").keeps_ingest_log
    assert not LearnerServiceSettings(ingest_log="off").keeps_ingest_log
