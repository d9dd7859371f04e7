"""The bridge's weights subscriber: the learner's policy bundles into the policy slot.

A receiver thread subscribes to the learner's ``weights`` topic and keeps only
the newest announcement; a loader thread checks the bundle's sha256, builds the
policy (``learner.acting.load_policy``: inference networks only, the one module of the
learner the bridge imports) and swaps it into the ``PolicySlot``.
The receiver keeps counting announcements while a bundle loads, so the lag is
always current. The
control loop never waits for any of it: between two ticks the slot's reference
changes, that is all. The slot reports the version it acts with and how many
versions it lags the newest one announced (``BridgeStatus.weights_lag``).
A learner restart under a new ``run_id`` is followed (its versions restart).
Acting is ``PolicySlot``'s: ``act(obs, explore)`` (False in evaluation episodes)
and ``reset()`` at every episode start reach the loaded bundle policy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from robot_bridge.policy import Policy, PolicySlot
from robot_bridge.types import ACTION_DIM, ObservationSpec
from tandem.messages import PolicyWeights
from tandem.subscriber import Malformed, Received, Subscriber, SubscriberThread
from tandem.wire import MAX_FRAME_BYTES, Decoded, WireError

log = logging.getLogger(__name__)

Loader = Callable[[bytes | memoryview], Policy]
POLL_S = 0.1
RCV_HWM = 4
LOADER_NICE = 19


def default_loader(bundle: bytes | memoryview) -> Policy:
    """Build the acting policy of bundle bytes (imported lazily: torch is heavy)."""
    from learner.acting import load_policy

    policy: Policy = load_policy(bundle)
    return policy


def load_play_policy(path: str, observation: ObservationSpec) -> Policy:
    """The explorer bundle at ``path`` (``tandem pretrain``'s ``explorer.safetensors``), checked
    against what this robot observes. Raises ValueError with the first mismatch."""
    from learner.acting import load_policy

    if not os.path.isfile(path):
        raise ValueError(f"play_bundle {path}: no such file")
    try:
        policy = load_policy(path)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"play_bundle {path}: {exc}") from exc
    problem = _play_mismatch(policy.spec, observation)
    if problem:
        raise ValueError(f"play_bundle {path} does not fit this robot: {problem}")
    return policy


def _play_mismatch(spec: Any, observation: ObservationSpec) -> str | None:
    """Why a bundle's observation spec cannot act on ``observation``, or None."""
    if spec.action_dim != ACTION_DIM:
        return f"it acts with {spec.action_dim}-D actions, the bridge takes {ACTION_DIM}-D"
    if spec.raw_state_dim > observation.state_dim:
        return (f"it reads {spec.raw_state_dim} state entries, "
                f"the robot has {observation.state_dim}")  # fmt: skip
    for camera in spec.cameras:
        shape = observation.cameras.get(camera)
        if shape is None:
            have = ", ".join(sorted(observation.cameras)) or "none"
            return f"it needs camera {camera!r} (the robot has: {have})"
        height, width = spec.image_shape[:2]
        if tuple(shape[:2]) != (height, width):
            return (f"camera {camera!r} is {shape[0]}x{shape[1]}, the bundle was trained on "
                    f"{height}x{width} (set bridge.image_size)")  # fmt: skip
    return None


@dataclass
class WeightsStats:
    """Counters of the subscriber (read from any thread)."""

    received: int = 0
    loaded: int = 0
    rejected: int = 0
    skipped: int = 0
    newest_version: int | None = None
    run_id: str | None = None
    last_load_s: float | None = None
    last_error: str | None = None


class LearnerPolicySlot(PolicySlot):
    """A policy slot fed by the learner's weights stream (``--policy learner``)."""

    def __init__(
        self, endpoint: str, *, loader: Loader = default_loader, context: zmq.Context | None = None
    ) -> None:
        super().__init__(kind="learner")
        self.endpoint = endpoint
        self.stats = WeightsStats()
        self._loader = loader
        self._ctx = context or zmq.Context.instance()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._rx: SubscriberThread | None = None
        self._acting: tuple[str, int] | None = None
        self._pending: Decoded | None = None
        self._wake = threading.Condition()

    @property
    def lag(self) -> int | None:
        """Versions between the newest announced and the one acting (None before any)."""
        newest, acting = self.stats.newest_version, self.version
        if newest is None:
            return None
        return newest if acting is None else max(0, newest - acting)

    def start(self) -> LearnerPolicySlot:
        """Start receiving. With the default loader, torch and the learner's networks are
        imported here, once, before the control loop runs: importing them later from the
        loader thread would hold the interpreter lock for seconds while the loop ticks."""
        if self._loader is default_loader:
            import learner.acting  # noqa: F401
        # Zero-copy frames: copying a 100+ MB bundle into bytes would hold the GIL (and
        # stall the control loop) for hundreds of milliseconds.
        sub = Subscriber(
            [self.endpoint], [PolicyWeights.TOPIC], expect=PolicyWeights, rcv_hwm=RCV_HWM,
            max_msg_bytes=MAX_FRAME_BYTES, copy=False, on_malformed=self._malformed,
            context=self._ctx,
        )  # fmt: skip
        log.debug("weights subscriber connected to %s", self.endpoint)
        self._rx = SubscriberThread(sub, self._on_batch, poll_s=POLL_S, name="weights-sub")
        self._rx.start()
        self._threads = [threading.Thread(target=self._load_loop, name="weights-load", daemon=True)]
        self._threads[0].start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._rx is not None:
            self._rx.stop(timeout)
            self._rx = None
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _on_batch(self, batch: list[Received]) -> None:
        """Count every announcement; hand the newest one to the loader."""
        newest: Decoded | None = None
        for received in batch:
            decoded = received.decoded
            assert decoded is not None and isinstance(decoded.msg, PolicyWeights)
            self.stats.received += 1
            self._announce(decoded.msg)
            if newest is None or _key(decoded.msg) >= _key(newest.msg):
                newest = decoded
        if newest is not None:
            with self._wake:
                self._pending = newest
                self._wake.notify()

    def _malformed(self, bad: Malformed) -> None:
        self._reject(f"malformed weights message: {bad.error}")

    def _load_loop(self) -> None:
        _lower_priority()
        while not self._stop.is_set():
            with self._wake:
                while self._pending is None and not self._stop.is_set():
                    self._wake.wait(0.5)
                candidate, self._pending = self._pending, None
            if candidate is not None:
                self._install(candidate)

    def _announce(self, msg: PolicyWeights) -> None:
        if msg.run_id != self.stats.run_id:
            if self.stats.run_id is not None:
                log.info("learner run changed: %s -> %s", self.stats.run_id, msg.run_id)
            self.stats.run_id, self.stats.newest_version = msg.run_id, None
        if self.stats.newest_version is None or msg.version > self.stats.newest_version:
            self.stats.newest_version = msg.version

    def _install(self, decoded: Decoded) -> None:
        msg = decoded.msg
        assert isinstance(msg, PolicyWeights)
        acting = self._acting
        stale = acting is not None and acting[0] == msg.run_id and msg.version <= acting[1]
        if msg.run_id != self.stats.run_id or stale:
            self.stats.skipped += 1
            return
        try:
            bundle = decoded.blob("bundle")
        except WireError as exc:
            self._reject(str(exc))
            return
        digest = hashlib.sha256(bundle).hexdigest()
        if digest != msg.sha256:
            self._reject(f"weights v{msg.version}: sha256 mismatch ({digest[:12]}...)")
            return
        t0 = time.monotonic()
        try:
            policy = self._loader(bundle)
        except Exception as exc:  # a bad bundle must never stop the subscriber or the bridge
            self._reject(f"weights v{msg.version} failed to load: {type(exc).__name__}: {exc}")
            return
        self.stats.last_load_s = time.monotonic() - t0
        self.load(policy, msg.version)
        self._acting = (msg.run_id, msg.version)
        self.stats.loaded += 1
        log.info(
            "weights v%d (il v%d, update %d) loaded in %.0f ms",
            msg.version, msg.il_version, msg.update_step, 1000 * self.stats.last_load_s,
        )  # fmt: skip

    def _reject(self, why: str) -> None:
        self.stats.rejected += 1
        self.stats.last_error = why
        log.warning("weights rejected: %s", why)


def _lower_priority() -> None:
    """Let the OS prefer the control loop over this loader thread (Linux: per-thread nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)
    except (AttributeError, OSError) as exc:
        log.debug("could not lower the loader thread's priority: %s", exc)


def _key(msg: Any) -> int:
    return int(msg.version)
