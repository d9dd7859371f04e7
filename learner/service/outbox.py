"""What the learner publishes: policy weights (XPUB) and metrics (PUB), from one thread.

ZMQ sockets belong to one thread, so a single outbox thread owns both. Weights
are keep-latest: ``publish_weights`` replaces whatever is waiting. The weights
socket is an XPUB, so a bridge that subscribes later (or reconnects after a
restart) is sent the newest bundle at once instead of waiting for the next
version. Metrics are sampled from ``metrics_fn`` every ``metrics_period_s``
(at least once a second, whatever training is doing). Each loop turn runs
under the ``Supervisor``: an error is counted (``threads/outbox/errors``),
logged and the next turn goes on.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from learner.loggers import ScalarSink
from learner.service.supervise import Supervisor
from tandem import security, wire
from tandem.messages import LearnerMetrics, PolicyWeights, Sequencer
from tandem.wire import WireError, encode

log = logging.getLogger(__name__)

MetricsFn = Callable[[], tuple[int, int, dict[str, float | None]]]
POLL_MS = 20


class Outbox:
    """Publishes weights on ``weights_endpoint`` and metrics on ``metrics_endpoint``."""

    def __init__(
        self,
        run_id: str,
        weights_endpoint: str,
        metrics_endpoint: str,
        metrics_fn: MetricsFn,
        *,
        metrics_period_s: float = 0.5,
        context: zmq.Context | None = None,
        supervisor: Supervisor | None = None,
        sink: ScalarSink | None = None,
    ) -> None:
        self.run_id = run_id
        self.sink = sink  # --logger: TensorBoard / W&B get what the metrics stream gets
        self._ctx = context or zmq.Context.instance()
        self._metrics_fn = metrics_fn
        self._period = metrics_period_s
        self._seq = Sequencer()
        self._lock = threading.Lock()
        self._waiting: list[bytes] | None = None
        self._latest: list[bytes] | None = None
        self._stop = threading.Event()
        self.supervisor = supervisor or Supervisor(self._stop)
        self._next_metrics = time.monotonic()
        self.weights = self._ctx.socket(zmq.XPUB)
        self.weights.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.weights.setsockopt(zmq.LINGER, 0)
        self.weights.setsockopt(zmq.SNDHWM, 8)
        # MAXMSGSIZE bounds what a PUB receives: subscriptions only (bundles go out, unbounded)
        self.weights.setsockopt(zmq.MAXMSGSIZE, wire.SMALL_MSG_BYTES)
        self.weights_endpoint = security.bind(self.weights, weights_endpoint)
        self.metrics = self._ctx.socket(zmq.PUB)
        self.metrics.setsockopt(zmq.LINGER, 0)
        self.metrics.setsockopt(zmq.MAXMSGSIZE, wire.SMALL_MSG_BYTES)
        self.metrics_endpoint = security.bind(self.metrics, metrics_endpoint)
        self.published_versions: list[int] = []
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop; the last metrics (the state the run ends in) still go out and to the sink."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        if not self._thread.is_alive():
            self.supervisor.guard("outbox", self._send_metrics, "sending the last metrics")
        self.weights.close()
        self.metrics.close()

    def publish_weights(
        self,
        bundle: bytes,
        *,
        version: int,
        method: str,
        il_version: int,
        update_step: int,
        config: dict[str, Any],
    ) -> str:
        """Queue a bundle for publishing (keep-latest); returns its sha256."""
        digest = hashlib.sha256(bundle).hexdigest()
        msg = PolicyWeights(
            seq=self._seq.next(PolicyWeights.TOPIC), run_id=self.run_id, version=version,
            sha256=digest, method=method, il_version=il_version, update_step=update_step,
            config=config,
        )  # fmt: skip
        parts = encode(msg, {"bundle": bundle})
        with self._lock:
            self._waiting = parts
            self.published_versions.append(version)
        log.info("publishing weights v%d (il v%d, %d bytes)", version, il_version, len(bundle))
        return digest

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self.supervisor.guard("outbox", self._once, "publishing weights and metrics")

    def _once(self) -> None:
        if self.weights.poll(POLL_MS):
            self._on_subscriptions()
        with self._lock:
            parts, self._waiting = self._waiting, None
        if parts is not None:
            self._latest = parts
            self._send_weights(parts)
        if time.monotonic() >= self._next_metrics:
            self._next_metrics = time.monotonic() + self._period
            self._send_metrics()

    def _on_subscriptions(self) -> None:
        resend = False
        while True:
            try:
                event = self.weights.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if event[:1] == b"\x01":
                resend = True
        if resend and self._latest is not None:
            log.info("a subscriber joined: re-sending the newest weights")
            self._send_weights(self._latest)

    def _send_weights(self, parts: list[bytes]) -> None:
        try:
            self.weights.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("weights not sent: a subscriber is not keeping up")

    def _send_metrics(self) -> None:
        update_step, env_steps, metrics = self._metrics_fn()
        try:
            msg = LearnerMetrics(
                seq=self._seq.next(LearnerMetrics.TOPIC), run_id=self.run_id,
                update_step=update_step, env_steps=env_steps, metrics=metrics,
            )  # fmt: skip
            self.metrics.send_multipart(encode(msg), flags=zmq.NOBLOCK)
        except (ValueError, WireError, zmq.Again) as exc:
            log.warning("metrics not sent: %s", exc)
        if self.sink is not None:
            self.sink.log(metrics, env_steps)
