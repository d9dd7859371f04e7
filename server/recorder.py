"""The recorder: subscribes to the bridges' step and episode streams and writes episodes.

One background thread owns a ZMQ SUB socket per bridge endpoint. Each episode is
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from sqlalchemy.exc import SQLAlchemyError

from server.db.schemas import ReconcileReport
from server.store import EpisodeStore
from tandem import security, wire
from tandem.episodes import (
    CAM_PREFIX,
    EpisodeFormatError,
    EpisodeMeta,
    EpisodeWriter,
    StepData,
    check_name,
)
from tandem.messages import BridgeStatus, EpisodeEvent, Outcome, StepRecord
from tandem.settings import load_settings
from tandem.streams import SeqTracker
from tandem.wire import Decoded, WireError, decode

log = logging.getLogger(__name__)

TOPICS = (StepRecord.TOPIC, EpisodeEvent.TOPIC, BridgeStatus.TOPIC)
POLL_S = 0.05
RCV_HWM = 100_000
MAX_BATCH = 500
LATENCY_WINDOW = 10_000


@dataclass
class RecorderStats:
    """Counters since start (steps and messages)."""

    steps: int = 0
    episodes_started: int = 0
    episodes_finished: int = 0
    labels: int = 0
    refused_labels: int = 0  # success labels for episodes stored incomplete
    flushes: int = 0
    malformed: int = 0
    dropped_steps: int = 0
    errors: int = 0
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0
    restarts: int = 0  # new sender epochs seen after another (a bridge restarted)
    last_error: str | None = None


@dataclass
class _Open:
    """An episode being recorded: its start info and (after the first step) its writer."""

    meta: EpisodeMeta
    writer: EpisodeWriter | None = None
    next_step: int = 0
    missing: int = 0
    last_flush: float = field(default_factory=time.monotonic)


class Recorder:
    """Records every bridge in ``endpoints`` into ``store`` from a background thread."""

    def __init__(
        self,
        store: EpisodeStore,
        endpoints: list[str],
        *,
        flush_every_s: float = 1.0,
        context: zmq.Context | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("the recorder needs at least one bridge endpoint")
        self.store = store
        self.endpoints = list(endpoints)
        self.flush_every_s = flush_every_s
        self._context = context or zmq.Context.instance()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stats = RecorderStats()
        self._seq = SeqTracker()
        self._open: dict[str, _Open] = {}
        self._robot_specs: dict[str, str] = {}
        self._ignored: set[str] = set()
        self._step_times: deque[float] = deque(maxlen=LATENCY_WINDOW)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> ReconcileReport:
        """Reconcile the store (recovering crashed episodes), then record in a thread."""
        if self._thread is not None:
            raise RuntimeError("recorder already started")
        report = self.store.reconcile()
        sockets = []
        for endpoint in self.endpoints:
            sock = self._context.socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, RCV_HWM)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, wire.MEDIA_MSG_BYTES)  # steps carry camera frames
            for topic in TOPICS:
                sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
            security.connect(sock, endpoint)
            sockets.append(sock)
        self._thread = threading.Thread(target=self._run, args=(sockets,), name="recorder")
        self._thread.daemon = True
        self._thread.start()
        log.info("recorder started on %s", ", ".join(self.endpoints))
        return report

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread; episodes still open are finished as incomplete."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("recorder thread did not stop within %.1f s", timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> RecorderStats:
        with self._lock:
            stats = RecorderStats(**asdict(self._stats))
            totals = self._seq.totals()
        stats.gaps, stats.missing, stats.duplicates = totals.gaps, totals.missing, totals.duplicates
        stats.restarts = totals.restarts
        return stats

    def step_latencies(self) -> np.ndarray:
        """Seconds spent on each of the last step messages (decode, write, flush, DB)."""
        return np.asarray(list(self._step_times), np.float64)

    def open_episodes(self) -> list[str]:
        with self._lock:
            return list(self._open)

    # ----------------------------------------------------------------- loop

    def _run(self, sockets: list[zmq.Socket]) -> None:
        poller = zmq.Poller()
        for sock in sockets:
            poller.register(sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(int(POLL_S * 1000)))
                for sock in sockets:
                    if sock in ready:
                        self._drain(sock)
                self._flush_due()
        finally:
            self._finish_all("recorder_stopped")
            for sock in sockets:
                sock.close()
            log.info("recorder stopped: %s", self.stats())

    def _drain(self, sock: zmq.Socket) -> None:
        for _ in range(MAX_BATCH):
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle_parts(parts)

    def _handle_parts(self, parts: list[bytes]) -> None:
        t0 = time.perf_counter()
        try:
            self._dispatch(decode(parts))
        except (WireError, EpisodeFormatError) as exc:
            self._count_error("malformed", exc)
        except (SQLAlchemyError, OSError) as exc:
            self._count_error("errors", exc)
        except Exception as exc:  # the loop must survive anything one message does
            log.exception("recorder: unexpected error handling a message")
            self._count_error("errors", exc)
        if parts and parts[0] == b"step":
            self._step_times.append(time.perf_counter() - t0)

    def _count_error(self, counter: str, exc: Exception) -> None:
        log.warning("recorder: %s message: %s", counter, exc)
        with self._lock:
            setattr(self._stats, counter, getattr(self._stats, counter) + 1)
            self._stats.last_error = f"{type(exc).__name__}: {exc}"

    def _dispatch(self, decoded: Decoded) -> None:
        msg = decoded.msg
        if isinstance(msg, StepRecord):
            if self._in_order(msg):
                self._on_step(msg, decoded.images())
        elif isinstance(msg, EpisodeEvent):
            if self._in_order(msg):
                self._on_event(msg, decoded.images())
        elif isinstance(msg, BridgeStatus) and self._robot_specs.get(msg.robot_id) != msg.robot:
            self._robot_specs[msg.robot_id] = msg.robot
            self.store.touch_robot(msg.robot_id, msg.robot)

    def _in_order(self, msg: StepRecord | EpisodeEvent) -> bool:
        """Count gaps per sender epoch; False for a duplicate or out-of-order message (dropped)."""
        with self._lock:
            return self._seq.observe(msg.robot_id, msg.TOPIC, msg.seq, msg.epoch) >= 0

    # ----------------------------------------------------------------- steps

    def _on_step(self, rec: StepRecord, images: dict[str, np.ndarray]) -> None:
        ep = self._open.get(rec.episode_id)
        if ep is None:
            ep = self._open_from_step(rec)
            if ep is None:
                self._bump("dropped_steps")
                return
        if ep.writer is None:
            ep.writer = self._make_writer(ep.meta, len(rec.state), images)
        if rec.step < ep.next_step:
            log.warning("episode %s: step %d repeats; dropped", rec.episode_id, rec.step)
            self._bump("dropped_steps")
            return
        ep.missing += rec.step - ep.next_step
        ep.writer.append(StepData.from_record(rec, images))
        ep.next_step = rec.step + 1
        self._bump("steps")
        if time.monotonic() - ep.last_flush >= self.flush_every_s - POLL_S:
            self._flush(ep)

    def _open_from_step(self, rec: StepRecord) -> _Open | None:
        """A step of an episode whose start we did not see: record it unless it is known."""
        if rec.episode_id in self._ignored:
            return None
        if self.store.has_episode(rec.episode_id):
            log.warning("steps of episode %s arrive but it is already stored: ignored",
                        rec.episode_id)  # fmt: skip
            self._ignored.add(rec.episode_id)
            return None
        meta = EpisodeMeta(
            robot_id=rec.robot_id,
            episode_id=rec.episode_id,
            kind=rec.episode_kind,
            state_dim=len(rec.state),
            task=self._robot_specs.get(rec.robot_id),
            started_wall=rec.t_wall,
            extra={"first_step": rec.step, "start_event": False},
        )
        return self._begin(meta)

    def _begin(self, meta: EpisodeMeta) -> _Open:
        check_name(meta.robot_id, "robot id")  # ids become paths: refuse before any row
        check_name(meta.episode_id, "episode id")
        for other in [e for e in self._open.values() if e.meta.robot_id == meta.robot_id]:
            log.warning("episode %s: no end event before the next episode", other.meta.episode_id)
            self._finish(other, end_reason="superseded", complete=False)
        self.store.begin_episode(meta)
        ep = _Open(meta=meta)
        with self._lock:
            self._open[meta.episode_id] = ep
            self._stats.episodes_started += 1
        return ep

    def _make_writer(
        self, meta: EpisodeMeta, state_dim: int, images: dict[str, np.ndarray]
    ) -> EpisodeWriter:
        shapes = {tuple(img.shape) for img in images.values()}
        if len(shapes) > 1:
            raise EpisodeFormatError(f"cameras of one step differ in shape: {sorted(shapes)}")
        meta = meta.model_copy(
            update={
                "state_dim": state_dim,
                "cameras": sorted(images),
                "image_shape": list(shapes.pop()) if shapes else None,
            }
        )
        # The recorder decides when to flush (also when no step arrives), not the writer.
        return EpisodeWriter(self.store.episodes_root, meta, flush_every_s=float("inf"))

    def _flush(self, ep: _Open) -> None:
        ep.last_flush = time.monotonic()
        if ep.writer is None:
            return
        ep.writer.flush()
        self.store.record_progress(ep.meta.episode_id, ep.writer.num_steps)
        self._bump("flushes")

    def _flush_due(self) -> None:
        now = time.monotonic()
        for ep in list(self._open.values()):
            if now - ep.last_flush >= self.flush_every_s - POLL_S:
                try:
                    self._flush(ep)
                except (SQLAlchemyError, OSError) as exc:
                    self._count_error("errors", exc)

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
        meta = EpisodeMeta(
            robot_id=msg.robot_id,
            episode_id=msg.episode_id,
            kind=msg.episode_kind,
            state_dim=0,
            task=self._robot_specs.get(msg.robot_id),
            operator=msg.operator,
            started_wall=msg.t_wall,
            extra=_episode_extra(msg),
        )
        self._begin(meta)

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
            ep.writer = self._make_writer(ep.meta, state_dim, images)
        tail_lost = max(0, msg.num_steps - ep.next_step)
        updates: dict[str, Any] = {
            "outcome": msg.outcome,
            "terminated": msg.terminated,
            "truncated": msg.truncated,
            "ended_wall": msg.t_wall,
        }
        if msg.operator is not None:
            updates["operator"] = msg.operator
        extra = _episode_extra(msg)
        if extra:
            updates["extra"] = {**ep.writer.meta.extra, **extra}
        final = _final_obs(ep.writer.meta, msg, images)
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
            self._bump("refused_labels")
            return
        self.store.label(msg.episode_id, msg.outcome, msg.operator)
        self._bump("labels")

    def _finish(
        self,
        ep: _Open,
        *,
        end_reason: str,
        complete: bool,
        final: dict[str, np.ndarray] | None = None,
        **updates: Any,
    ) -> None:
        with self._lock:
            self._open.pop(ep.meta.episode_id, None)
        self._ignored.add(ep.meta.episode_id)
        if ep.writer is None:  # started but no step and no end observation: nothing on disk
            ep.writer = EpisodeWriter(self.store.episodes_root, ep.meta)
        ep.writer.finish(final, end_reason=end_reason, complete=complete, **updates)
        self.store.finish_episode(ep.writer.meta)
        self._bump("episodes_finished")
        log.info("episode %s finished: %d steps, %s, complete=%s", ep.meta.episode_id,
                 ep.writer.num_steps, end_reason, complete)  # fmt: skip

    def _finish_all(self, reason: str) -> None:
        for ep in list(self._open.values()):
            try:
                self._finish(ep, end_reason=reason, complete=False)
            except (SQLAlchemyError, OSError, EpisodeFormatError) as exc:
                self._count_error("errors", exc)

    def _bump(self, counter: str) -> None:
        with self._lock:
            setattr(self._stats, counter, getattr(self._stats, counter) + 1)


def _episode_extra(msg: EpisodeEvent) -> dict[str, Any]:
    """Weights version and evaluation batch of an episode event, for ``EpisodeMeta.extra``."""
    fields = {
        "weights_version": msg.weights_version,
        "eval_batch": msg.eval_batch,
        "eval_index": msg.eval_index,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _final_obs(
    meta: EpisodeMeta, msg: EpisodeEvent, images: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The end event's observation keyed like chunk arrays (``state``, ``cam_<name>``)."""
    final: dict[str, np.ndarray] = {}
    if msg.final_state is not None and len(msg.final_state) == meta.state_dim:
        final["state"] = np.asarray(msg.final_state, np.float32)
    shape = tuple(meta.image_shape or ())
    for cam in meta.cameras:
        image = images.get(cam)
        if image is not None and image.shape == shape and image.dtype == np.uint8:
            final[CAM_PREFIX + cam] = image
    return final


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
