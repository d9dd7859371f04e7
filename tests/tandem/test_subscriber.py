"""The shared stream subscriber against real PUB sockets on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from tandem import security, wire
from tandem.messages import (
    ActionSource,
    BridgeStatus,
    ControlMode,
    EpisodeKind,
    PolicyWeights,
    StepRecord,
)
from tandem.subscriber import Malformed, Received, Subscriber, SubscriberThread

EPOCH = "ab" * 8


@pytest.fixture
def pubs() -> Iterator[list[tuple[zmq.Socket, str]]]:
    ctx = zmq.Context()
    socks = []
    for _ in range(2):
        sock = ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        socks.append((sock, security.bind(sock, "tcp://127.0.0.1:*")))
    yield socks
    ctx.destroy(linger=0)


def step(seq: int, robot: str = "r0") -> StepRecord:
    return StepRecord(seq=seq, epoch=EPOCH, robot_id=robot, episode_id="e", step=seq,
                      episode_kind=EpisodeKind.DEMO, mode=ControlMode.TELEOP, state=[0.0],
                      action=[0.0] * 7, action_source=ActionSource.HUMAN, t_obs=0.0)  # fmt: skip


def status(robot: str) -> list[bytes]:
    return wire.encode(BridgeStatus(robot_id=robot, robot="fake", mode=ControlMode.IDLE))


def connected(sub: Subscriber, pubs: list[tuple[zmq.Socket, str]]) -> None:
    """Publish statuses until every endpoint's SUB has joined (a late joiner misses some)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 5
    while len(seen) < len(pubs) and time.monotonic() < deadline:
        for i, (sock, _) in enumerate(pubs):
            sock.send_multipart(status(f"r{i}"))
        seen.update(item.source for item in sub.poll(0.05))
    assert len(seen) == len(pubs), "subscriber never connected"
    while sub.poll(0.05):
        pass


def collect(sub: Subscriber, count: int) -> list[Received]:
    got: list[Received] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        got.extend(sub.poll(0.05))
    return got


def test_batches_from_several_endpoints_are_decoded_with_their_source(pubs) -> None:
    with Subscriber([e for _, e in pubs], ["status", "step"], track=["step"]) as sub:
        connected(sub, pubs)
        image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
        for i, (sock, _) in enumerate(pubs):
            for seq in range(3):
                sock.send_multipart(wire.encode(step(seq, f"r{i}"), {"cam/front": image}))
        got = collect(sub, 6)
    assert sorted((r.source, r.decoded.msg.seq) for r in got if r.decoded) == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)
    ]  # fmt: skip
    assert all(r.topic == "step" and r.missed == 0 for r in got)
    assert np.array_equal(got[0].decoded.images()["front"], image)  # type: ignore[union-attr]
    assert sub.stats.decoded >= 6


def test_gaps_are_counted_and_duplicates_dropped(pubs) -> None:
    sock, endpoint = pubs[0]
    with Subscriber([endpoint], ["status", "step"], track=["step"]) as sub:
        connected(sub, pubs[:1])
        for seq in (0, 1, 4, 4, 2, 5):
            sock.send_multipart(wire.encode(step(seq)))
        got = collect(sub, 4)
        time.sleep(0.1)
        got += sub.poll(0.05)
        assert [(r.decoded.msg.seq, r.missed) for r in got if r.decoded] == [
            (0, 0), (1, 0), (4, 2), (5, 0)
        ]  # fmt: skip
        totals = sub.seq_totals()
        assert (totals.gaps, totals.missing, totals.duplicates) == (1, 2, 2)
        assert sub.stats.duplicates == 2
        assert sub.seq_stats("r0", "step").last_seq == 5


def test_malformed_messages_are_counted_handed_over_and_never_raised(pubs) -> None:
    sock, endpoint = pubs[0]
    bad: list[Malformed] = []
    with Subscriber([endpoint], [""], on_malformed=bad.append) as sub:
        connected(sub, pubs[:1])
        sock.send_multipart([b"step", b"{not json"])
        sock.send_multipart([b"nonsense", b"{}"])
        sock.send_multipart(status("r0"))
        got = collect(sub, 1)
    assert [r.topic for r in got] == ["status"]
    assert [b.topic for b in bad] == [b"step", b"nonsense"]
    assert all(isinstance(b.error, wire.WireError) for b in bad)
    assert sub.stats.malformed == 2


def test_raw_topics_are_passed_on_undecoded(pubs) -> None:
    sock, endpoint = pubs[0]
    with Subscriber([endpoint], ["status", "frame"], raw_topics=["frame"]) as sub:
        connected(sub, pubs[:1])
        sock.send_multipart([b"frame", b"not even json", b"jpeg"])
        got = collect(sub, 1)
    assert got[0].decoded is None and list(got[0].parts) == [b"frame", b"not even json", b"jpeg"]
    assert sub.stats.malformed == 0


def test_zero_copy_blobs_arrive_intact(pubs) -> None:
    sock, endpoint = pubs[0]
    blob = bytes(range(256)) * 1000
    msg = PolicyWeights(run_id="run", version=3, sha256="0" * 64, method="ibrl")
    with Subscriber([endpoint], ["weights"], expect=PolicyWeights, copy=False) as sub:
        got: list[Received] = []
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            sock.send_multipart(wire.encode(msg, {"bundle": blob}))
            got = sub.poll(0.05)
    assert bytes(got[0].decoded.blob("bundle")) == blob  # type: ignore[union-attr]


def test_the_thread_survives_a_failing_consumer_and_stops_cleanly(pubs) -> None:
    sock, endpoint = pubs[0]
    batches: list[list[Received]] = []
    idle = threading.Event()

    def on_batch(batch: list[Received]) -> None:
        batches.append(batch)
        if len(batches) == 1:
            raise RuntimeError("a consumer bug")

    sub = Subscriber([endpoint], ["status"])
    thread = SubscriberThread(sub, on_batch, on_idle=idle.set, poll_s=0.01).start()
    try:
        deadline = time.monotonic() + 5
        while len(batches) < 3 and time.monotonic() < deadline:
            sock.send_multipart(status("r0"))
            time.sleep(0.02)
        assert len(batches) >= 3 and thread.running and idle.is_set()
    finally:
        thread.stop()
    assert not thread.running
