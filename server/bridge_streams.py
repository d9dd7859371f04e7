"""The server's one subscription to every bridge: each message decoded once, fed to every sink.

One ``tandem.subscriber.Subscriber`` thread receives the bridges' PUB streams
(status, frame, step, episode). Each batch goes to every attached sink on that
thread: the recorder writes episodes there, and ``LoopInbox`` hands the batch
to the asyncio loop, where the telemetry relay fans it out to browsers. So a
step, raw images included, is decoded once however many consumers it has.
Camera frames are not decoded at all (the JPEG goes to browsers as it came).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

import zmq

from tandem.messages import CameraFrame
from tandem.subscriber import Malformed, Received, Subscriber, SubscriberThread

log = logging.getLogger(__name__)

RCV_HWM = 100_000  # steps must not be lost while the recorder writes a chunk
INBOX_LIMIT = 10_000


class StreamSink(Protocol):
    """A consumer of the bridge streams; every method runs on the streams thread."""

    def on_batch(self, batch: list[Received]) -> None: ...

    def on_malformed(self, bad: Malformed) -> None: ...

    def on_idle(self) -> None:
        """Called after every poll, with or without messages (periodic flushes)."""


class BridgeStreams:
    """A subscriber thread on ``endpoints`` that feeds every attached ``StreamSink``."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        topics: Collection[str] = ("",),
        context: zmq.Context | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self._topics = list(topics)
        self._context = context
        self._sinks: list[StreamSink] = []
        self._lock = threading.Lock()  # held while a batch is handed out
        self._thread: SubscriberThread | None = None
        self.subscriber: Subscriber | None = None

    def attach(self, sink: StreamSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def detach(self, sink: StreamSink) -> None:
        """Remove ``sink``; once this returns, the streams thread no longer calls it."""
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("bridge streams already started")
        self.subscriber = Subscriber(
            self.endpoints,
            self._topics,
            track=("step", "episode"),
            raw_topics=(CameraFrame.TOPIC,),
            rcv_hwm=RCV_HWM,
            on_malformed=self._malformed,
            context=self._context,
        )
        thread = SubscriberThread(self.subscriber, self._batch, on_idle=self._idle, name="streams")
        self._thread = thread.start()
        log.debug("bridge streams from %s", ", ".join(self.endpoints) or "no bridge")

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.stop(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.running

    def _each(self, call: Callable[[StreamSink], None]) -> None:
        with self._lock:
            for sink in self._sinks:
                try:
                    call(sink)
                except Exception:  # one consumer's bug must not starve the others
                    log.exception("bridge stream consumer %s failed", type(sink).__name__)

    def _batch(self, batch: list[Received]) -> None:
        self._each(lambda sink: sink.on_batch(batch))

    def _malformed(self, bad: Malformed) -> None:
        self._each(lambda sink: sink.on_malformed(bad))

    def _idle(self) -> None:
        self._each(lambda sink: sink.on_idle())


class LoopInbox:
    """A ``StreamSink`` that hands what the streams thread got to callbacks on an asyncio loop.

    At most ``limit`` items (messages and malformed-message reports) wait for the
    loop; past that the oldest are dropped (browsers only need the newest), counted
    in ``dropped``. One callback is scheduled at a time, however many batches arrive.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handle: Callable[[list[Received]], None],
        on_malformed: Callable[[Malformed], None],
        limit: int = INBOX_LIMIT,
    ) -> None:
        self._loop = loop
        self._handle = handle
        self._handle_malformed = on_malformed
        self._items: deque[Received | Malformed] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self._scheduled = False
        self.dropped = 0

    def on_batch(self, batch: list[Received]) -> None:
        self._put(batch)

    def on_malformed(self, bad: Malformed) -> None:
        self._put([bad])

    def on_idle(self) -> None:
        pass

    def _put(self, items: Sequence[Received | Malformed]) -> None:
        with self._lock:
            self.dropped += max(0, len(self._items) + len(items) - (self._items.maxlen or 0))
            self._items.extend(items)
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._scheduled = False
        batch: list[Received] = []
        for item in items:
            if isinstance(item, Received):
                batch.append(item)
                continue
            if batch:
                self._handle(batch)
                batch = []
            self._handle_malformed(item)
        if batch:
            self._handle(batch)
