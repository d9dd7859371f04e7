"""The recorder: writes the bridges' step and episode streams into the episode store.

It is a sink of ``server.bridge_streams.BridgeStreams``: in the server it shares
the one subscription (and the one decode of each step) with the browsers' relay;
given endpoints instead, it runs its own streams thread. Each episode is
written incrementally with ``tandem.episodes.EpisodeWriter`` (a chunk at least
every ``flush_every_s``), finished with the atomic rename, and mirrored in the
database (row created at ``start`` with ``complete=False``, updated at ``end``).
``start`` first reconciles the store, which recovers episodes a crash
interrupted. Malformed messages are logged and counted, never fatal.

Run standalone: ``python -m server.recorder --data-dir D --endpoint tcp://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from sqlalchemy.exc import SQLAlchemyError

from server.bridge_streams import BridgeStreams
from server.db.schemas import ReconcileReport
from server.recording import (
    OpenEpisode,
    RecorderCounters,
    RecorderStats,
    end_updates,
    final_obs,
    make_writer,
    meta_from_start,
    meta_from_step,
)
from server.store import EpisodeStore
from tandem import security
from tandem.episodes import EpisodeFormatError, EpisodeMeta, EpisodeWriter, StepData, check_name
from tandem.messages import BridgeStatus, EpisodeEvent, Outcome, StepRecord
from tandem.settings import load_settings
from tandem.subscriber import DEFAULT_POLL_S, Malformed, Received
from tandem.wire import WireError

log = logging.getLogger(__name__)

TOPICS = (StepRecord.TOPIC, EpisodeEvent.TOPIC, BridgeStatus.TOPIC)
POLL_S = DEFAULT_POLL_S
LATENCY_WINDOW = 10_000


class Recorder:
    """Records every bridge of ``source`` into ``store``.

    ``source`` is the server's shared ``BridgeStreams``, or bridge PUB endpoints to
    subscribe to on a streams thread of the recorder's own.
    """

    def __init__(
        self,
        store: EpisodeStore,
        source: Sequence[str] | BridgeStreams,
        *,
        flush_every_s: float = 1.0,
        context: zmq.Context | None = None,
    ) -> None:
        self._own_streams = not isinstance(source, BridgeStreams)
        self._streams = _streams_of(source, context)
        self.store = store
        self.endpoints = self._streams.endpoints
        self.flush_every_s = flush_every_s
        self._attached = False
        self._lock = threading.Lock()  # guards ``_open`` (read from other threads)
        self._counters = RecorderCounters()
        self._open: dict[str, OpenEpisode] = {}
        self._robot_specs: dict[str, str] = {}
        self._ignored: set[str] = set()
        self._step_times: deque[float] = deque(maxlen=LATENCY_WINDOW)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> ReconcileReport:
        """Reconcile the store (recovering crashed episodes), then record every step."""
        if self._attached:
            raise RuntimeError("recorder already started")
        report = self.store.reconcile()
        self._streams.attach(self)
        self._attached = True
        if self._own_streams:
            self._streams.start()
        log.info("recorder started on %s", ", ".join(self.endpoints))
        return report

    def stop(self, timeout: float = 10.0) -> None:
        """Stop recording; episodes still open are finished as incomplete."""
        if not self._attached:
            return
        if self._own_streams:
            self._streams.stop(timeout)
        self._streams.detach(self)  # the streams thread no longer calls us after this
        self._attached = False
        self._finish_all("recorder_stopped")
        log.info("recorder stopped: %s", self.stats())

    @property
    def running(self) -> bool:
        return self._attached and self._streams.running

    def stats(self) -> RecorderStats:
        stats = self._counters.snapshot()
        sub = self._streams.subscriber
        if sub is not None:
            totals = sub.seq_totals()
            stats.gaps, stats.missing = totals.gaps, totals.missing
            stats.duplicates, stats.restarts = totals.duplicates, totals.restarts
        return stats

    def step_latencies(self) -> np.ndarray:
        """Seconds spent on each of the last step messages (decode, write, flush, DB)."""
        return np.asarray(list(self._step_times), np.float64)

    def open_episodes(self) -> list[str]:
        with self._lock:
            return list(self._open)

    # ----------------------------------------------------------------- stream sink

    def on_batch(self, batch: list[Received]) -> None:
        for item in batch:
            if item.decoded is not None:
                self._handle(item)

    def on_malformed(self, bad: Malformed) -> None:
        if bad.topic.startswith(tuple(t.encode() for t in TOPICS)):
            self._counters.error("malformed", bad.error)

    def on_idle(self) -> None:
        self._flush_due()

    def _handle(self, item: Received) -> None:
        t0 = time.perf_counter()
        try:
            self._dispatch(item)
        except (WireError, EpisodeFormatError) as exc:
            self._counters.error("malformed", exc)
        except (SQLAlchemyError, OSError) as exc:
            self._counters.error("errors", exc)
        except Exception as exc:  # the loop must survive anything one message does
            log.exception("recorder: unexpected error handling a message")
            self._counters.error("errors", exc)
        if item.topic == StepRecord.TOPIC:
            self._step_times.append(item.decode_s + time.perf_counter() - t0)

    def _dispatch(self, item: Received) -> None:
        """Steps and events arrive in order: the subscriber dropped duplicates already."""
        assert item.decoded is not None
        msg = item.decoded.msg
        if isinstance(msg, StepRecord):
            self._on_step(msg, item.decoded.images())
        elif isinstance(msg, EpisodeEvent):
            self._on_event(msg, item.decoded.images())
        elif isinstance(msg, BridgeStatus) and self._robot_specs.get(msg.robot_id) != msg.robot:
            self._robot_specs[msg.robot_id] = msg.robot
            self.store.touch_robot(msg.robot_id, msg.robot)

    # ----------------------------------------------------------------- steps

    def _on_step(self, rec: StepRecord, images: dict[str, np.ndarray]) -> None:
        ep = self._open.get(rec.episode_id)
        if ep is None:
            ep = self._open_from_step(rec)
            if ep is None:
                self._counters.bump("dropped_steps")
                return
        if ep.writer is None:
            ep.writer = make_writer(self.store.episodes_root, ep.meta, len(rec.state), images)
        if rec.step < ep.next_step:
            log.warning("episode %s: step %d repeats; dropped", rec.episode_id, rec.step)
            self._counters.bump("dropped_steps")
            return
        ep.missing += rec.step - ep.next_step
        ep.writer.append(StepData.from_record(rec, images))
        ep.next_step = rec.step + 1
        self._counters.bump("steps")
        if time.monotonic() - ep.last_flush >= self.flush_every_s - POLL_S:
            self._flush(ep)

    def _open_from_step(self, rec: StepRecord) -> OpenEpisode | None:
        """A step of an episode whose start we did not see: record it unless it is known."""
        if rec.episode_id in self._ignored:
            return None
        if self.store.has_episode(rec.episode_id):
            log.warning("steps of episode %s arrive but it is already stored: ignored",
                        rec.episode_id)  # fmt: skip
            self._ignored.add(rec.episode_id)
            return None
        return self._begin(meta_from_step(rec, self._robot_specs.get(rec.robot_id)))

    def _begin(self, meta: EpisodeMeta) -> OpenEpisode:
        check_name(meta.robot_id, "robot id")  # ids become paths: refuse before any row
        check_name(meta.episode_id, "episode id")
        for other in [e for e in self._open.values() if e.meta.robot_id == meta.robot_id]:
            log.warning("episode %s: no end event before the next episode", other.meta.episode_id)
            self._finish(other, end_reason="superseded", complete=False)
        self.store.begin_episode(meta)
        ep = OpenEpisode(meta=meta)
        with self._lock:
            self._open[meta.episode_id] = ep
        self._counters.bump("episodes_started")
        return ep

    def _flush(self, ep: OpenEpisode) -> None:
        ep.last_flush = time.monotonic()
        if ep.writer is None:
            return
        ep.writer.flush()
        self.store.record_progress(ep.meta.episode_id, ep.writer.num_steps)
        self._counters.bump("flushes")

    def _flush_due(self) -> None:
        now = time.monotonic()
        for ep in list(self._open.values()):
            if now - ep.last_flush >= self.flush_every_s - POLL_S:
                try:
                    self._flush(ep)
                except (SQLAlchemyError, OSError) as exc:
                    self._counters.error("errors", exc)

    # ----------------------------------------------------------------- episode events

    def _on_event(self, msg: EpisodeEvent, images: dict[str, np.ndarray]) -> None:
        if msg.event == "start":
            self._on_start(msg)
        elif msg.event == "end":
            self._on_end(msg, images)
        else:
            self._on_label(msg)

    def _on_start(self, msg: EpisodeEvent) -> None:
        if msg.episode_id in self._open or self.store.has_episode(msg.episode_id):
            log.warning("start of episode %s seen twice: ignored", msg.episode_id)
            return
        self._begin(meta_from_start(msg, self._robot_specs.get(msg.robot_id)))

    def _on_end(self, msg: EpisodeEvent, images: dict[str, np.ndarray]) -> None:
        ep = self._open.get(msg.episode_id)
        if ep is None:
            if msg.outcome is not None and self.store.has_episode(msg.episode_id):
                self._on_label(msg)
            else:
                log.warning("end of episode %s that is not being recorded", msg.episode_id)
            return
        if ep.writer is None:
            state_dim = len(msg.final_state or [])
            ep.writer = make_writer(self.store.episodes_root, ep.meta, state_dim, images)
        tail_lost = max(0, msg.num_steps - ep.next_step)
        updates = end_updates(msg, ep.writer.meta)
        final = final_obs(ep.writer.meta, msg, images)
        self._finish(ep, end_reason=msg.reason, complete=ep.missing + tail_lost == 0,
                     final=final, **updates)  # fmt: skip

    def _on_label(self, msg: EpisodeEvent) -> None:
        """A label from the bridge. An episode cut short (stored incomplete) never becomes a
        success this way: it would be used as a full demo. A person can still relabel it
        (``POST /api/episodes/{id}/label``); failure and discard labels apply as usual."""
        if msg.outcome is None:
            raise EpisodeFormatError(f"label event for {msg.episode_id} carries no outcome")
        if msg.outcome is Outcome.SUCCESS and not self.store.get_episode(msg.episode_id).complete:
            log.warning("episode %s was cut short (incomplete): the bridge's success label is "
                        "not applied; a person can relabel it", msg.episode_id)  # fmt: skip
            self._counters.bump("refused_labels")
            return
        self.store.label(msg.episode_id, msg.outcome, msg.operator)
        self._counters.bump("labels")

    def _finish(self, ep: OpenEpisode, *, end_reason: str, complete: bool,
                final: dict[str, np.ndarray] | None = None, **updates: Any) -> None:  # fmt: skip
        with self._lock:
            self._open.pop(ep.meta.episode_id, None)
        self._ignored.add(ep.meta.episode_id)
        if ep.writer is None:  # started but no step and no end observation: nothing on disk
            ep.writer = EpisodeWriter(self.store.episodes_root, ep.meta)
        ep.writer.finish(final, end_reason=end_reason, complete=complete, **updates)
        self.store.finish_episode(ep.writer.meta)
        self._counters.bump("episodes_finished")
        log.info("episode %s finished: %d steps, %s, complete=%s", ep.meta.episode_id,
                 ep.writer.num_steps, end_reason, complete)  # fmt: skip

    def _finish_all(self, reason: str) -> None:
        for ep in list(self._open.values()):
            try:
                self._finish(ep, end_reason=reason, complete=False)
            except (SQLAlchemyError, OSError, EpisodeFormatError) as exc:
                self._counters.error("errors", exc)


def _streams_of(
    source: Sequence[str] | BridgeStreams, context: zmq.Context | None
) -> BridgeStreams:
    if isinstance(source, BridgeStreams):
        return source
    if not source:
        raise ValueError("the recorder needs at least one bridge endpoint")
    return BridgeStreams(source, topics=TOPICS, context=context)


def main(argv: list[str] | None = None) -> int:
    """Run a recorder until SIGTERM or SIGINT (used by the crash test and for debugging)."""
    parser = argparse.ArgumentParser(description="Record bridge episodes into the store.")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", default=None, help="default: SQLite in the data dir")
    parser.add_argument("--endpoint", action="append", required=True, help="bridge PUB endpoint")
    parser.add_argument("--flush-every", type=float, default=1.0, help="seconds between flushes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    security.configure(load_settings(None, data_dir=args.data_dir))  # its keys, if any
    store = EpisodeStore(args.database_url, args.data_dir)
    recorder = Recorder(store, args.endpoint, flush_every_s=args.flush_every)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    report = recorder.start()
    log.info("recorder ready (reconciled: %s)", report.model_dump_json())
    while not done.wait(0.2) and recorder.running:
        pass
    recorder.stop()
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
