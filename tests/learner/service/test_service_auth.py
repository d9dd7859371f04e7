"""The learner's weights and metrics streams reach only peers with the deployment's keys
(issue 17, defect 1): no keys, another deployment's keys or a key off the allow-list
receive nothing. Real sockets on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq

from learner.service.outbox import Outbox
from tandem import security
from tandem.wire import decode
from tests.security_keys import BAD_PEERS, bad_peers, deployment

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def keys(tmp_path) -> security.Keys:
    return deployment(tmp_path / "keys")


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def outbox(keys, ctx) -> Iterator[Outbox]:
    with security.using(security.Policy(keys)):
        box = Outbox(
            "run-a", "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", lambda: (3, 7, {"x": 1.0}),
            metrics_period_s=0.1, context=ctx,
        )  # fmt: skip
    box.start()
    yield box
    box.close()


def _received(ctx, endpoint: str, policy: security.Policy, publish=None) -> list[str]:
    """The topics a SUB with ``policy`` keys gets from ``endpoint`` within a second."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    security.connect(sub, endpoint, policy)
    time.sleep(0.3)  # joined (or refused)
    if publish is not None:
        publish()
    topics, deadline = [], time.monotonic() + 1.0
    while (left := deadline - time.monotonic()) > 0 and sub.poll(int(left * 1000) + 1):
        topics.append(decode(sub.recv_multipart()).topic)
    sub.close()
    return topics


def _weights(box: Outbox) -> None:
    box.publish_weights(
        b"0.5", version=1, method="ibrl", il_version=0, update_step=1, config={}
    )  # fmt: skip


def test_keyed_subscribers_get_metrics_and_weights(outbox, keys, ctx) -> None:
    good = security.Policy(keys)
    assert "metrics" in _received(ctx, outbox.metrics_endpoint, good)
    assert "weights" in _received(ctx, outbox.weights_endpoint, good, lambda: _weights(outbox))


@pytest.mark.parametrize("peer", BAD_PEERS)
def test_a_peer_without_the_keys_gets_no_metrics_nor_weights(
    peer, outbox, keys, tmp_path, ctx
) -> None:
    bad = bad_peers(keys, tmp_path)[peer]
    assert _received(ctx, outbox.metrics_endpoint, bad) == []
    assert _received(ctx, outbox.weights_endpoint, bad, lambda: _weights(outbox)) == []
