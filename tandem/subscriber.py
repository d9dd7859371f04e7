"""One stream subscriber: SUB sockets, poll, drain, decode, sequence tracking.

Every process that listens to a PUB stream (the server's recorder and browser
relay, the learner's ingest, the bridge's weights receiver, the health probe)
uses this module instead of setting up its own sockets.

``Subscriber(endpoints, topics, ...)`` connects one SUB socket per endpoint,
with the process's CurveZMQ client keys (``tandem.security.connect``), and

* ``poll(timeout_s) -> list[Received]`` waits up to ``timeout_s`` for the first
  message, then drains at most ``max_batch`` waiting messages per socket without
  blocking and decodes each one once (``tandem.wire.decode``);
* ``accept(parts, source=0) -> Received | None`` does the same for one message
  already received (tests, replays);
* ``seq_totals()`` / ``seq_stats(sender, topic)`` read the sequence counters
  (``tandem.streams.SeqTracker``) from any thread;
* ``close()`` closes the sockets (also as a context manager).

A ``Received`` carries the endpoint index (``source``), the topic, the decoded
message (``decoded``), and for the topics in ``track`` how many messages of
that sender's stream were missed just before it (``missed``); duplicates and
out-of-order messages of tracked topics are dropped (``stats.duplicates``).
Topics in ``raw_topics`` are not decoded: ``decoded`` is None and ``parts``
holds the frames (the server forwards camera JPEGs as they came). A malformed
message is counted (``stats.malformed``), passed to ``on_malformed`` (default:
a warning in the log), and never raised.

``SubscriberThread(subscriber, on_batch, on_idle=...)`` runs ``poll`` in a
daemon thread and hands every non-empty batch to ``on_batch``; ``on_idle`` runs
after every poll (periodic flushes). An exception in a callback is logged and
the loop goes on; ``stop()`` joins the thread and closes the subscriber.

Typical uses::

    # keep-newest receiver (bridge weights): only the last batch item matters
    sub = Subscriber([endpoint], [PolicyWeights.TOPIC], expect=PolicyWeights,
                     rcv_hwm=4, max_msg_bytes=wire.MAX_FRAME_BYTES, copy=False)
    SubscriberThread(sub, on_batch, poll_s=0.1, name="weights-sub").start()

    # lossless data stream (recorder, ingest): gaps counted, duplicates dropped
    topics = (StepRecord.TOPIC, EpisodeEvent.TOPIC)
    sub = Subscriber(endpoints, topics, track=topics, rcv_hwm=100_000)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from types import TracebackType

import zmq

from tandem import security, wire
from tandem.messages import Message
from tandem.streams import SeqStats, SeqTracker

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 0.05
DEFAULT_MAX_BATCH = 500


@dataclass(frozen=True)
class Received:
    """One message as the subscriber received it."""

    source: int  # index of its endpoint in ``Subscriber.endpoints``
    topic: str
    decoded: wire.Decoded | None  # None for a raw topic
    parts: Sequence[wire.Buffer] = ()  # the frames, for a raw topic only
    missed: int = 0  # messages of this sender's stream missed just before (tracked topics)
    decode_s: float = 0.0  # seconds spent decoding it


@dataclass(frozen=True)
class Malformed:
    """A message that could not be decoded: where from, its raw topic frame, why."""

    source: int
    topic: bytes
    error: wire.WireError


@dataclass
class SubscriberStats:
    received: int = 0
    decoded: int = 0
    malformed: int = 0
    duplicates: int = 0  # tracked messages dropped as repeated or out of order


MalformedHandler = Callable[[Malformed], None]


def _log_malformed(bad: Malformed) -> None:
    log.warning("malformed message (%r): %s", bad.topic[:32], bad.error)


class Subscriber:
    """SUB sockets on ``endpoints`` receiving ``topics``; see the module docstring."""

    def __init__(
        self,
        endpoints: Sequence[str],
        topics: Collection[str],
        *,
        expect: type[Message] | None = None,
        track: Collection[str] = (),
        raw_topics: Collection[str] = (),
        rcv_hwm: int = 1000,
        max_msg_bytes: int = wire.MEDIA_MSG_BYTES,
        copy: bool = True,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_malformed: MalformedHandler = _log_malformed,
        context: zmq.Context | None = None,
    ) -> None:
        """``topics`` are ZMQ prefix filters (an empty string receives everything)."""
        self.endpoints = list(endpoints)
        self.stats = SubscriberStats()
        self._expect = expect
        self._track = frozenset(track)
        self._raw = frozenset(topic.encode() for topic in raw_topics)
        self._copy = copy
        self._max_batch = max_batch
        self._on_malformed = on_malformed
        self._seq = SeqTracker()
        self._lock = threading.Lock()
        ctx = context or zmq.Context.instance()
        self._sockets = [
            _sub_socket(ctx, endpoint, topics, rcv_hwm, max_msg_bytes) for endpoint in endpoints
        ]
        self._poller = zmq.Poller()
        for sock in self._sockets:
            self._poller.register(sock, zmq.POLLIN)

    # ------------------------------------------------------------ receiving
    def poll(self, timeout_s: float) -> list[Received]:
        """Messages that arrive within ``timeout_s`` (drained in a batch, decoded once each)."""
        if not self._sockets:
            time.sleep(timeout_s)  # nothing to poll: an empty poll would return at once
            return []
        ready = dict(self._poller.poll(max(0, int(timeout_s * 1000))))
        batch: list[Received] = []
        for source, sock in enumerate(self._sockets):
            if sock in ready:
                self._drain(source, sock, batch)
        return batch

    def _drain(self, source: int, sock: zmq.Socket, batch: list[Received]) -> None:
        for _ in range(self._max_batch):
            try:
                parts = self._recv(sock)
            except zmq.Again:
                return
            received = self.accept(parts, source)
            if received is not None:
                batch.append(received)

    def _recv(self, sock: zmq.Socket) -> list[wire.Buffer]:
        if self._copy:
            return list(sock.recv_multipart(zmq.NOBLOCK))
        # Zero-copy frames: copying a 100+ MB bundle into bytes would hold the GIL
        # (and stall every other thread) for hundreds of milliseconds.
        return [frame.buffer for frame in sock.recv_multipart(zmq.NOBLOCK, copy=False)]

    def accept(self, parts: Sequence[wire.Buffer], source: int = 0) -> Received | None:
        """Decode and sequence-check one message; None when malformed or a duplicate."""
        self.stats.received += 1
        topic = bytes(parts[0]) if parts else b""
        if topic in self._raw:
            return Received(source, topic.decode(), None, parts)
        t0 = time.perf_counter()
        try:
            decoded = wire.decode(parts, expect=self._expect)
        except wire.WireError as exc:
            self.stats.malformed += 1
            self._on_malformed(Malformed(source, topic, exc))
            return None
        decode_s = time.perf_counter() - t0
        self.stats.decoded += 1
        missed = self._observe(source, decoded)
        if missed < 0:
            self.stats.duplicates += 1
            return None
        return Received(source, decoded.topic, decoded, (), missed, decode_s)

    def _observe(self, source: int, decoded: wire.Decoded) -> int:
        if decoded.topic not in self._track:
            return 0
        msg = decoded.msg
        sender = str(getattr(msg, "robot_id", "") or self.endpoints[source])
        with self._lock:
            return self._seq.observe(sender, decoded.topic, msg.seq, msg.epoch)

    # ------------------------------------------------------------ counters
    def seq_totals(self) -> SeqStats:
        """Gaps, missing, duplicates and restarts over every tracked stream (any thread)."""
        with self._lock:
            return self._seq.totals()

    def seq_stats(self, sender: str, topic: str) -> SeqStats:
        with self._lock:
            return SeqStats(**vars(self._seq.stats(sender, topic)))

    # ------------------------------------------------------------ life cycle
    def close(self) -> None:
        for sock in self._sockets:
            self._poller.unregister(sock)
            sock.close(linger=0)
        self._sockets = []

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _sub_socket(
    ctx: zmq.Context, endpoint: str, topics: Collection[str], hwm: int, max_bytes: int
) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, max_bytes)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    security.connect(sock, endpoint)
    return sock


class SubscriberThread:
    """Runs ``subscriber.poll`` in a daemon thread; batches go to ``on_batch``."""

    def __init__(
        self,
        subscriber: Subscriber,
        on_batch: Callable[[list[Received]], None],
        *,
        on_idle: Callable[[], None] | None = None,
        poll_s: float = DEFAULT_POLL_S,
        name: str = "subscriber",
    ) -> None:
        self.subscriber = subscriber
        self.poll_s = poll_s
        self._on_batch = on_batch
        self._on_idle = on_idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> SubscriberThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, join the thread and close the subscriber's sockets."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s thread did not stop within %.1f s", self._thread.name, timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._once()
        finally:
            self.subscriber.close()

    def _once(self) -> None:
        try:
            batch = self.subscriber.poll(self.poll_s)
            if batch:
                self._on_batch(batch)
            if self._on_idle is not None:
                self._on_idle()
        except Exception:  # a bug in one batch must not end the stream
            log.exception("%s: handling a batch failed", self._thread.name)
            self._stop.wait(self.poll_s)  # a broken socket must not spin the loop
