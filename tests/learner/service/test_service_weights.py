"""Weights over real sockets: outbox (XPUB) -> bridge's LearnerPolicySlot; metrics stream."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from learner.service.outbox import Outbox
from robot_bridge.weights import LearnerPolicySlot
from tandem.messages import LearnerMetrics, PolicyWeights
from tandem.wire import decode, encode


class ConstPolicy:
    """A policy whose action is the float in its bundle (enough to tell bundles apart)."""

    def __init__(self, bundle: bytes | memoryview) -> None:
        self.value = float(bytes(bundle).decode())

    def act(self, obs):
        return np.full(7, self.value), {"proposal": "rl"}


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def outbox():
    box = Outbox(
        "run-a", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", lambda: (3, 7, {"x": 1.0, "y": None}),
        metrics_period_s=0.1,
    )  # fmt: skip
    box.start()
    yield box
    box.close()


def _publish(box, version, value, il_version=0):
    box.publish_weights(
        str(value).encode(), version=version, method="ibrl", il_version=il_version,
        update_step=version * 10, config={},
    )  # fmt: skip


@pytest.mark.timeout(30)
def test_late_subscriber_gets_newest_weights_and_swaps(outbox):
    _publish(outbox, 1, 0.25)
    time.sleep(0.2)  # published before anyone listens
    slot = LearnerPolicySlot(outbox.weights_endpoint, loader=ConstPolicy)
    assert not slot.ready and slot.lag is None
    slot.start()
    try:
        assert _wait(lambda: slot.version == 1)
        action, info = slot.act({"state": np.zeros(3)})
        assert action[0] == 0.25 and info.weights_version == 1
        _publish(outbox, 2, 0.5, il_version=1)
        assert _wait(lambda: slot.version == 2)
        assert slot.lag == 0 and slot.stats.rejected == 0
    finally:
        slot.close()


@pytest.mark.timeout(30)
def test_bad_checksum_rejected_and_lag_reported():
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.bind("tcp://127.0.0.1:*")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    loaded = threading.Event()

    def slow_loader(bundle: bytes | memoryview) -> ConstPolicy:
        loaded.wait(10)
        return ConstPolicy(bundle)

    slot = LearnerPolicySlot(endpoint, loader=slow_loader).start()
    try:
        time.sleep(0.3)
        bad = PolicyWeights(run_id="r", version=1, sha256="0" * 64, method="ibrl")
        pub.send_multipart(encode(bad, {"bundle": b"1.0"}))
        assert _wait(lambda: slot.stats.rejected == 1)
        assert not slot.ready
        import hashlib

        for v in (2, 3):
            good = PolicyWeights(
                run_id="r", version=v, sha256=hashlib.sha256(b"0.5").hexdigest(), method="ibrl"
            )
            pub.send_multipart(encode(good, {"bundle": b"0.5"}))
            time.sleep(0.2)
        # v2 is loading (blocked); v3 has been announced: the slot lags.
        assert _wait(lambda: slot.stats.newest_version == 3)
        assert slot.lag == 3
        loaded.set()
        assert _wait(lambda: slot.version == 3)
        assert slot.lag == 0
    finally:
        loaded.set()
        slot.close()
        pub.close()


@pytest.mark.timeout(30)
def test_metrics_published_at_least_once_a_second(outbox):
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"metrics")
    sub.connect(outbox.metrics_endpoint)
    try:
        t0 = time.monotonic()
        got = []
        while len(got) < 5 and time.monotonic() - t0 < 5:
            if sub.poll(1000):
                got.append(decode(sub.recv_multipart(), expect=LearnerMetrics).msg)
        assert len(got) == 5
        assert got[-1].metrics == {"x": 1.0, "y": None} and got[-1].env_steps == 7
        assert time.monotonic() - t0 < 2.5
    finally:
        sub.close()
