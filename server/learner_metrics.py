"""The learner's metrics stream: to dashboards in batches, and to the store's history.

A ``tandem.subscriber`` thread receives ``LearnerMetrics`` from the learner's
metrics PUB and hands them to the server's loop, where the newest message of
each run is kept (``latest``) and everything is sent to dashboards as one
``metrics`` telemetry message every ``metrics_batch_s`` (and to the metrics
sink, the store's history). The buffer is bounded even if the flush stalls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.bridge_registry import LinkStats, TaskSet
from server.bridge_streams import LoopInbox
from server.fanout import Hubs
from tandem.messages import LearnerMetrics, MetricsBatch, MetricsRow
from tandem.subscriber import Malformed, Received, Subscriber, SubscriberThread

log = logging.getLogger(__name__)

MAX_BUFFERED = 10_000
MetricsSink = Callable[[list[LearnerMetrics]], Awaitable[None]]


def metrics_row(msg: LearnerMetrics) -> dict[str, Any]:
    """One metrics message as charts draw it (non-finite values as None)."""
    return MetricsRow.of(msg).model_dump()


class LearnerMetricsRelay:
    """Learner metrics from ``endpoint`` to dashboards and the metrics sink."""

    def __init__(self, endpoint: str, hubs: Hubs, stats: LinkStats, batch_s: float) -> None:
        self.endpoint = endpoint
        self.hubs = hubs
        self.stats = stats
        self.batch_s = batch_s
        self.sink: MetricsSink | None = None
        self.latest: dict[str, LearnerMetrics] = {}
        self._buffer: list[LearnerMetrics] = []
        self._thread: SubscriberThread | None = None

    def start(self, tasks: TaskSet) -> None:
        """Subscribe (on a thread) and start the flush loop (on the running loop)."""
        inbox = LoopInbox(asyncio.get_running_loop(), self.on_batch, self.on_malformed)
        sub = Subscriber(
            [self.endpoint],
            [LearnerMetrics.TOPIC],
            expect=LearnerMetrics,
            on_malformed=inbox.on_malformed,
        )
        self._thread = SubscriberThread(sub, inbox.on_batch, name="metrics-sub").start()
        tasks.spawn(self._flush_loop, "metrics-flush")

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def on_batch(self, batch: list[Received]) -> None:
        for item in batch:
            assert item.decoded is not None
            msg = item.decoded.msg
            assert isinstance(msg, LearnerMetrics)
            self.stats.metrics += 1
            self.latest[msg.run_id] = msg
            self._buffer.append(msg)
        if len(self._buffer) > MAX_BUFFERED:  # bounded even if the flush task stalls
            del self._buffer[: len(self._buffer) // 2]

    def on_malformed(self, bad: Malformed) -> None:
        self.stats.bad_messages += 1
        log.warning("bad learner metrics message: %s", bad.error)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.batch_s)
            if self._buffer:
                await self.flush()

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        rows = [MetricsRow.of(m) for m in batch]
        self.hubs.telemetry.publish_event(MetricsBatch(rows=rows).to_json())
        if self.sink is not None:
            try:
                await self.sink(batch)
            except Exception:  # the history is best effort; live charts must go on
                log.exception("could not store %d metric messages", len(batch))
