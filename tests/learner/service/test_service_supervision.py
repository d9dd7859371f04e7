"""Issue 17: the learner's threads are supervised and malformed episodes are rejected.

An episode with a step missing a camera used to raise ``KeyError`` on the ingest
thread's housekeeping path, which killed the thread while the process stayed up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from learner.service.assembly import EpisodeAssembler
from learner.service.ingest import Delivery, Ingest
from learner.service.outbox import Outbox
from learner.service.routing import route
from learner.service.supervise import Supervisor
from learner.service.trainer import OnlineLearner
from tandem.messages import EpisodeKind, LearnerMetrics, Outcome
from tandem.settings import load_settings
from tandem.settings.learner_service import LearnerServiceSettings
from tandem.wire import decode
from tests.learner.service.helpers import Bridge, end, start, step
from tests.polling import wait_for

pytestmark = pytest.mark.timeout(120)
CAMS = ("front", "wrist")
N = 6  # steps per synthetic episode


def _images(t: int, cams: tuple[str, ...] = CAMS) -> dict[str, np.ndarray]:
    return {c: np.full((8, 8, 3), t, np.uint8) for c in cams}


def _episode_messages(robot: str, episode: str, seq: int, bad_step: int | None = None) -> list:
    """start, N steps (step ``bad_step`` lacks the wrist camera), end; two cameras."""
    msgs = [(start(robot, episode, seq=seq)[0], {})]
    for t in range(N):
        rec, _ = step(robot, episode, t, seq=seq + t)
        msgs.append((rec, _images(t, ("front",) if t == bad_step else CAMS)))
    msgs.append((end(robot, episode, N, seq=seq + 1)[0], _images(N)))
    return msgs


@pytest.fixture
def ingest_and_bridge() -> Iterator[tuple[Ingest, Bridge, list[Delivery]]]:
    ctx = zmq.Context()
    bridge, got = Bridge(ctx), []
    ingest = Ingest(
        [bridge.endpoint], got.append, assembler=EpisodeAssembler(), ingest_log=None,
        route_kwargs={"demos_require_success": True, "rlif_penalty": None},
        label_grace_s=0.1, context=ctx,
    )  # fmt: skip
    ingest.start()
    bridge.wait_subscribed()
    try:
        yield ingest, bridge, got
    finally:
        ingest.stop()
        bridge.sock.close()
        ctx.term()


def _by_episode(got: list[Delivery]) -> dict[str, Delivery]:
    return {d.episode.episode_id: d for d in got}


def test_an_episode_missing_a_camera_is_rejected_and_ingest_goes_on(ingest_and_bridge, caplog):
    ingest, bridge, got = ingest_and_bridge
    caplog.set_level(logging.INFO)
    bridge.send(_episode_messages("a", "bad", 0, bad_step=3))
    wait_for(lambda: len(got) >= 1, 10, "the bad episode released by housekeeping")
    bridge.send(_episode_messages("b", "good-1", 0))
    bridge.send(_episode_messages("a", "good-2", 10))
    wait_for(lambda: len(got) >= 3, 10, "the episodes after the malformed one")
    eps = _by_episode(got)
    bad = eps["bad"].routed
    assert bad.malformed and "step 3" in (bad.dropped_reason or "")
    assert "wrist" in (bad.dropped_reason or "") and not bad.online
    for good in ("good-1", "good-2"):
        assert eps[good].routed.dropped_reason is None
        assert sum(len(s) for s in eps[good].routed.online) == N
    assert ingest.counters.episodes_malformed == 1 and ingest.counters.episodes_routed == 2
    assert ingest.thread is not None and ingest.thread.is_alive()
    assert "a/bad rejected, malformed: step 3" in caplog.text


def _assembled(*, nan_state_at: int | None, short_action_at: int | None, final_wrist=(8, 8)):
    """One episode through the assembler with the given faults."""
    asm = EpisodeAssembler()
    for t in range(N):
        rec, _ = step("r", "e", t, seq=t)
        if t == nan_state_at:
            rec = rec.model_copy(update={"state": [float("nan")] * 5})
        if t == short_action_at:
            rec = rec.model_copy(update={"action": [0.0] * 6})
        asm.on_step(rec, _images(t))
    final = {**_images(N), "wrist": np.zeros((*final_wrist, 3), np.uint8)}
    (ep,) = asm.on_event(end("r", "e", N, seq=1)[0], final)
    return route(ep, demos_require_success=True, rlif_penalty=None)


def test_wrong_shapes_and_non_finite_states_are_rejected() -> None:
    routed = _assembled(nan_state_at=2, short_action_at=4)
    assert routed.malformed and routed.dropped_reason == "malformed: step 2: non-finite state"
    reason = _assembled(nan_state_at=None, short_action_at=4).dropped_reason
    assert reason == "malformed: step 4: action shape (6,), expected (7,)"
    reason = _assembled(nan_state_at=None, short_action_at=None, final_wrist=(4, 4)).dropped_reason
    assert reason == "malformed: final observation: camera 'wrist' image shape (4, 4, 3), " \
        "expected (8, 8, 3)"  # fmt: skip


def test_an_error_on_the_ingest_thread_is_counted_logged_and_recovered(
    ingest_and_bridge, caplog, monkeypatch
):
    ingest, bridge, got = ingest_and_bridge
    housekeeping, calls = ingest._housekeeping, []

    def faulty() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected fault")
        housekeeping()

    monkeypatch.setattr(ingest, "_housekeeping", faulty)
    wait_for(lambda: len(calls) >= 2, 10, "the ingest loop after the fault")
    bridge.send(_episode_messages("a", "after", 0))
    wait_for(lambda: len(got) == 1, 10, "an episode after the fault")
    assert ingest.supervisor.metrics()["threads/ingest/errors"] == 1
    assert "ingest thread: unexpected error #1 while polling the bridges" in caplog.text
    assert "injected fault" in caplog.text
    assert ingest.thread is not None and ingest.thread.is_alive()


def test_an_error_on_the_outbox_thread_is_counted_logged_and_recovered(caplog):
    calls: list[int] = []

    def metrics() -> tuple[int, int, dict[str, float | None]]:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("injected fault")
        return len(calls), 0, {}

    ctx = zmq.Context()
    outbox = Outbox("run", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", metrics,
                    metrics_period_s=0.05, context=ctx)  # fmt: skip
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, LearnerMetrics.TOPIC.encode())
    sub.connect(outbox.metrics_endpoint)
    outbox.start()
    try:
        assert sub.poll(10_000), "no metrics after the fault"
        msg = decode(sub.recv_multipart()).msg
        assert isinstance(msg, LearnerMetrics) and msg.update_step >= 2
        assert outbox.supervisor.metrics()["threads/outbox/errors"] == 1
        assert outbox.thread.is_alive() and "injected fault" in caplog.text
    finally:
        outbox.close()
        sub.close()
        ctx.term()


def _learner(tmp_path) -> OnlineLearner:
    cfg = {
        "device": "cpu", "obs": "state", "threads": 1, "hidden_dim": 16, "state_actor_layers": 1,
        "critic_layers": 1, "num_q": 2, "batch_size": 8, "min_buffer": 8, "bc_steps": 5,
        "bc_hidden_dim": 16, "bc_layers": 1, "update_freq": 1, "num_critic_updates": 1,
        "buffer_size": 2000, "bridges": ["tcp://127.0.0.1:9"], "online_min_demos": 1,
        "weights_endpoint": "tcp://127.0.0.1:*", "metrics_endpoint": "tcp://127.0.0.1:*",
    }  # fmt: skip
    settings = load_settings(None, data_dir=tmp_path / "data", learner=cfg)
    svc = LearnerServiceSettings(min_transitions=8, max_updates_per_s=1000)
    return OnlineLearner(settings, svc)


def _demo(asm: EpisodeAssembler) -> Delivery:
    asm.on_event(*start("r", "demo", seq=0, kind=EpisodeKind.DEMO))
    for t in range(12):
        asm.on_step(*step("r", "demo", t, seq=t, kind=EpisodeKind.DEMO))
    msg, frames = end("r", "demo", 12, seq=1, kind=EpisodeKind.DEMO, terminated=True)
    (ep,) = asm.on_event(msg.model_copy(update={"outcome": Outcome.SUCCESS}), frames)
    return Delivery(ep, route(ep, demos_require_success=True, rlif_penalty=None))


def test_an_error_on_the_trainer_loop_is_counted_logged_and_recovered(tmp_path, caplog):
    learner = _learner(tmp_path)
    learner.start()
    take, calls = learner._take_deliveries, []

    def faulty() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected fault")
        take()

    learner._take_deliveries = faulty  # type: ignore[method-assign]
    thread = threading.Thread(target=learner.run, daemon=True)
    thread.start()
    try:
        learner.deliveries.append(_demo(EpisodeAssembler()))
        wait_for(lambda: learner.il is not None, 60, "the pre-training after the fault")
        assert learner.metrics()[2]["threads/trainer/errors"] == 1
        assert "trainer thread: unexpected error #1" in caplog.text
        assert thread.is_alive() and learner.supervisor.fatal_reason is None
    finally:
        learner.stop_event.set()
        thread.join(30)


def test_repeated_failures_are_fatal_but_bad_items_never_are(caplog) -> None:
    stop = threading.Event()
    sup = Supervisor(stop, max_consecutive=3, backoff_s=0.001)

    def boom() -> None:
        raise ValueError("bad input")

    for _ in range(50):
        assert not sup.guard("ingest", boom, "one message", per_item=True)
    assert sup.fatal_reason is None and not stop.is_set()
    assert sup.guard("ingest", lambda: None) and not sup.guard("ingest", boom)
    assert sup.guard("ingest", lambda: None)  # a unit done resets the streak
    for _ in range(3):
        sup.guard("ingest", boom, "polling")
    assert sup.fatal_reason == "ingest thread failed 3 times in a row" and stop.is_set()
    assert sup.metrics() == {"threads/ingest/errors": 54.0, "threads/fatal": 1.0}
    assert caplog.text.count("Traceback") == 10  # then only every 100th: no log flood
