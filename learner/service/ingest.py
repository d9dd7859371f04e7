"""Ingest: the bridges' step and episode streams into routed learner data.

One thread polls the stream subscriber (``tandem.subscriber``: a SUB socket per
bridge, each message decoded once and checked for sequence gaps per robot and
topic, duplicates dropped), writes it to the learner's ingest log
when it keeps one (no recorder), and fed to the ``EpisodeAssembler``. Finished episodes are routed
(``routing.route``) and queued for the trainer, which adds them to its buffers
on its own thread: ingest never waits for training. An episode with missing
steps waits a little for the recorder's copy in the episode store and is
completed from it (``backfill_root``), so a gap in the live stream does not
have to cost data.

Every unit of work (one message, one episode routed, one backfill, the log
flush, one poll) runs under the ``Supervisor``: an unexpected exception is
counted (``threads/ingest/errors``), logged with what was being done, and ingest
goes on with the next unit. A malformed episode (``EpisodeArrays.problem``:
a step missing a camera, inconsistent shapes, non-finite numbers) is rejected
with its reason in the log and counted (``ingest/episodes_malformed``).
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from learner.episode_arrays import EpisodeArrays, load_arrays, merge
from learner.service.assembly import EpisodeAssembler
from learner.service.metrics import IngestSnapshot
from learner.service.routing import Routed, route
from learner.service.sources import IngestLog
from learner.service.supervise import Supervisor
from tandem.episodes import EpisodeFormatError
from tandem.messages import EpisodeEvent, StepRecord
from tandem.subscriber import Malformed, Subscriber
from tandem.wire import Decoded

log = logging.getLogger(__name__)

POLL_MS = 50
RCV_HWM = 100_000
MAX_BATCH = 500
BACKFILL_WAIT_S = 5.0
ACTING_WINDOW = 1000


@dataclass
class IngestCounters:
    """Counters of the ingest thread (copied under the lock by ``snapshot``)."""

    steps: int = 0
    malformed: int = 0
    errors: int = 0
    backfilled_steps: int = 0
    episodes_routed: int = 0
    episodes_dropped: int = 0
    episodes_malformed: int = 0
    acting_il: collections.deque[bool] = field(
        default_factory=lambda: collections.deque(maxlen=ACTING_WINDOW)
    )


@dataclass
class Delivery:
    """A finished episode and where its data goes, handed to the trainer."""

    episode: EpisodeArrays
    routed: Routed
    env_steps: bool = True  # counts towards the update budget (false: demos recorded earlier)


class Ingest:
    """Subscribes to every bridge in ``endpoints`` and delivers routed episodes to ``deliver``."""

    def __init__(
        self,
        endpoints: list[str],
        deliver: Callable[[Delivery], None],
        *,
        assembler: EpisodeAssembler,
        ingest_log: IngestLog | None,
        route_kwargs: Mapping[str, Any],
        backfill_root: Path | None = None,
        label_grace_s: float = 0.0,
        context: zmq.Context | None = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.assembler = assembler
        topics = (StepRecord.TOPIC, EpisodeEvent.TOPIC)
        self.subscriber = Subscriber(
            self.endpoints, topics, track=topics, rcv_hwm=RCV_HWM, max_batch=MAX_BATCH,
            on_malformed=self._malformed, context=context,
        )  # fmt: skip
        self.counters = IngestCounters()
        self.lock = threading.Lock()
        self._deliver = deliver
        self._log = ingest_log
        self._route_kwargs = route_kwargs
        self._backfill_root = backfill_root
        self._pending: list[tuple[float, EpisodeArrays]] = []
        self._held: dict[tuple[str, str], tuple[float, EpisodeArrays]] = {}
        self._grace = label_grace_s
        self._stop = threading.Event()
        self.supervisor = supervisor or Supervisor(self._stop)
        self._thread: threading.Thread | None = None
        self._last_flush = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest")
        self._thread.daemon = True
        self._thread.start()
        log.info("ingest subscribed to %s", ", ".join(self.endpoints))

    @property
    def thread(self) -> threading.Thread | None:
        """The ingest thread while started (the trainer checks that it is alive)."""
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)  # the thread closes the subscriber as it ends
            self._thread = None
        else:
            self.subscriber.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.supervisor.guard("ingest", self._once, "polling the bridges")
        finally:
            self.supervisor.guard("ingest", self._release_all, "releasing held episodes")
            if self._log is not None:
                self.supervisor.guard("ingest", self._log.close, "closing the ingest log")
            self.subscriber.close()

    def _once(self) -> None:
        for received in self.subscriber.poll(POLL_MS / 1000):
            assert received.decoded is not None
            self._handle(received.decoded)
        self._housekeeping()

    def handle(self, parts: list[bytes]) -> None:
        """Process one multipart message; a bad one is counted and logged, never raised."""
        received = self.subscriber.accept(parts)
        if received is not None and received.decoded is not None:
            self._handle(received.decoded)

    def _malformed(self, bad: Malformed) -> None:
        self._count("malformed", bad.error)

    def _handle(self, decoded: Decoded) -> None:
        what = f"handling {type(decoded.msg).__name__} {_describe(decoded.msg)}"
        dispatch = functools.partial(self._dispatch_counted, decoded)
        self.supervisor.guard("ingest", dispatch, what, per_item=True)

    def _dispatch_counted(self, decoded: Decoded) -> None:
        try:
            self._dispatch(decoded)
        except (EpisodeFormatError, OSError, ValueError) as exc:
            self._count("errors", exc)

    def _dispatch(self, decoded: Decoded) -> None:
        msg = decoded.msg
        if isinstance(msg, StepRecord):
            self._on_step(msg, decoded.images())
        elif isinstance(msg, EpisodeEvent):
            images = decoded.images()
            if msg.event == "end" and self._log is not None:
                self._log.on_end(msg, images)
            if msg.event == "label":
                self._relabel(msg)
            elif msg.event == "start":
                self._release_robot(msg.robot_id)
            for ep in self.assembler.on_event(msg, images):
                self._finished(ep)

    def _on_step(self, rec: StepRecord, images: dict[str, np.ndarray]) -> None:
        if (rec.robot_id, rec.episode_id) not in self.assembler.open:
            self._release_robot(rec.robot_id)
        late = self.assembler.stats.late_steps
        finished = self.assembler.on_step(rec, images)
        for ep in finished:
            if self._log is not None:
                self._log.close_episode((ep.robot_id, ep.episode_id), "superseded")
            self._finished(ep)
        if self.assembler.stats.late_steps > late:
            return
        if self._log is not None:
            self._log.on_step(rec, images)
        with self.lock:
            self.counters.steps += 1
            info = rec.policy_info
            if info is not None and info.proposal in ("il", "rl") and not rec.intervention:
                self.counters.acting_il.append(info.proposal == "il")

    def _finished(self, ep: EpisodeArrays) -> None:
        backfill = ep.has_gaps() and not ep.discarded and ep.defect is None
        if self._backfill_root is not None and backfill:
            self._pending.append((time.monotonic() + BACKFILL_WAIT_S, ep))
            return
        self._hold(ep)

    def _hold(self, ep: EpisodeArrays) -> None:
        """Keep a finished episode while its operator may still relabel it (e.g. discard):
        until the robot starts another episode or ``label_grace_s`` has passed."""
        if self._grace <= 0:
            self.deliver(ep)
        else:
            self._held[(ep.robot_id, ep.episode_id)] = (time.monotonic() + self._grace, ep)

    def _relabel(self, msg: EpisodeEvent) -> None:
        held = self._held.get((msg.robot_id, msg.episode_id))
        if held is not None and msg.outcome is not None:
            held[1].outcome = msg.outcome
            log.info("episode %s/%s relabelled %s", msg.robot_id, msg.episode_id, msg.outcome)
        elif msg.outcome is not None:
            log.warning("label %s for %s/%s arrived after its data was used; not applied",
                        msg.outcome, msg.robot_id, msg.episode_id)  # fmt: skip

    def _release_robot(self, robot_id: str) -> None:
        for key in [k for k in self._held if k[0] == robot_id]:
            self.deliver(self._held.pop(key)[1])

    def _release_all(self) -> None:
        for _, ep in self._pending:
            self._hold(ep)
        self._pending.clear()
        for key in list(self._held):
            self.deliver(self._held.pop(key)[1])

    def deliver(self, ep: EpisodeArrays) -> None:
        """Route one finished episode and hand it to the trainer (errors: see module doc)."""
        what = f"routing episode {ep.robot_id}/{ep.episode_id}"
        self.supervisor.guard("ingest", functools.partial(self._route, ep), what, per_item=True)

    def _route(self, ep: EpisodeArrays) -> None:
        routed = route(ep, **self._route_kwargs)
        with self.lock:
            if routed.malformed:
                self.counters.episodes_malformed += 1
            if routed.dropped_reason:
                self.counters.episodes_dropped += 1
            else:
                self.counters.episodes_routed += 1
        reason = routed.dropped_reason
        if routed.malformed:
            log.warning("episode %s/%s rejected, %s", ep.robot_id, ep.episode_id, reason)
        elif reason:
            log.info("episode %s/%s dropped: %s", ep.robot_id, ep.episode_id, reason)
        self._deliver(Delivery(ep, routed))

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._log is not None and now - self._last_flush >= self._log.flush_every_s:
            self._last_flush = now
            self.supervisor.guard("ingest", self._log.flush, "flushing the ingest log")
        for item in list(self._pending):
            what = f"backfilling episode {item[1].robot_id}/{item[1].episode_id}"
            backfill = functools.partial(self._backfill, item, now)
            done = self.supervisor.guard("ingest", backfill, what, per_item=True)
            if not done and item in self._pending:  # keep the live copy rather than retry forever
                self._pending.remove(item)
                self._hold(item[1])
        for key, (deadline, _) in list(self._held.items()):
            if now >= deadline:
                self.deliver(self._held.pop(key)[1])

    def _backfill(self, item: tuple[float, EpisodeArrays], now: float) -> None:
        """Complete a pending episode from the store's copy, or give up at its deadline."""
        deadline, ep = item
        stored = self._stored_copy(ep)
        if stored is None and now < deadline:
            return
        merged = ep if stored is None else merge(ep, stored)
        self._pending.remove(item)
        with self.lock:
            self.counters.backfilled_steps += len(merged) - len(ep)
        self._hold(merged)

    def _stored_copy(self, ep: EpisodeArrays) -> EpisodeArrays | None:
        assert self._backfill_root is not None
        path = self._backfill_root / ep.robot_id / ep.episode_id
        if not (path / "meta.json").exists():
            return None
        try:
            return load_arrays(path)
        except EpisodeFormatError as exc:
            log.warning("cannot backfill %s from the store: %s", path, exc)
            return None

    def snapshot(self) -> IngestSnapshot:
        """The ingest figures for the metrics, copied under the lock (any thread)."""
        with self.lock:
            totals, c = self.subscriber.seq_totals(), self.counters
            acting = list(c.acting_il)
            return IngestSnapshot(
                steps=c.steps, malformed=c.malformed, errors=c.errors,
                backfilled_steps=c.backfilled_steps, episodes_routed=c.episodes_routed,
                episodes_dropped=c.episodes_dropped, episodes_malformed=c.episodes_malformed,
                gaps=totals.gaps, missing=totals.missing, duplicates=totals.duplicates,
                late_steps=self.assembler.stats.late_steps,
                open_episodes=len(self.assembler.open),
                il_acting_frac=sum(acting) / len(acting) if acting else None,
            )  # fmt: skip

    def _count(self, counter: str, exc: Exception) -> None:
        log.warning("ingest: %s message: %s", counter, exc)
        with self.lock:
            setattr(self.counters, counter, getattr(self.counters, counter) + 1)


def _describe(msg: object) -> str:
    """``robot/episode step N`` of a step or episode message, for log context."""
    robot, episode = getattr(msg, "robot_id", "?"), getattr(msg, "episode_id", "?")
    step = getattr(msg, "step", None)
    return f"{robot}/{episode}" + ("" if step is None else f" step {step}")
