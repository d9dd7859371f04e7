"""The arm-server: hosts one ``ArmDriver`` behind the ZeroMQ arm protocol (docs/arm_protocol.md).

A ROUTER socket answers one reply per request. A watchdog stops the arm when the
peer that holds the link (the last to send ``hello``, ``apply_action`` or ``home``)
sends nothing for ``arm_timeout_s`` (re-armed by its next request). Other peers may
read the state or stop the arm, but never keep it alive.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import zmq

from robot_bridge.driver import ArmDriver, DriverError
from robot_bridge.mock import MockDriver
from robot_bridge.types import RobotState
from tandem import security, wire
from tandem.messages.arm import (
    ApplyAction,
    ArmReply,
    ArmRequest,
    ArmState,
    GetState,
    Heartbeat,
    Hello,
    Home,
    Stop,
)
from tandem.settings import BridgeSettings

log = logging.getLogger(__name__)
_LIMIT_TOL = 1e-6
_MAX_POLL_S = 0.05


def state_to_wire(state: RobotState, watchdog: Watchdog) -> ArmState:
    return ArmState(
        ee_pos=[float(x) for x in state.ee_pos], ee_quat=[float(x) for x in state.ee_quat],
        gripper=float(state.gripper), state=[float(x) for x in state.state],
        reward=float(state.reward), success=bool(state.success), stopped=state.stopped,
        watchdog_trips=watchdog.trips, last_stop_after_s=watchdog.last_trip_after_s,
        t_state=state.t,
    )  # fmt: skip


class Watchdog:
    """Stops the arm after ``timeout_s`` without a request; pure apart from ``stop``."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.last_request: float | None = None
        self.tripped = False
        self.trips = 0
        self.last_trip_after_s: float | None = None

    def feed(self, now: float) -> None:
        self.last_request, self.tripped = now, False

    def due(self, now: float) -> bool:
        """True exactly once per silence longer than the timeout."""
        if self.tripped or self.last_request is None:
            return False
        if now - self.last_request <= self.timeout_s:
            return False
        self.tripped, self.trips = True, self.trips + 1
        self.last_trip_after_s = now - self.last_request
        return True

    def wait_s(self, now: float) -> float:
        """How long the server may sleep in poll before the watchdog needs a look."""
        if self.tripped or self.last_request is None:
            return _MAX_POLL_S
        return max(0.0, min(_MAX_POLL_S, self.last_request + self.timeout_s - now + 1e-4))


class ArmServer:
    """Serve ``driver`` on ``bind`` until ``stop_event`` is set (``serve``), or step by step."""

    def __init__(self, driver: ArmDriver, bind: str, *, context: zmq.Context | None = None) -> None:
        self.driver = driver
        self.watchdog = Watchdog(driver.spec.arm_timeout_s)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, wire.SMALL_MSG_BYTES)  # requests are small
        self.endpoint: str = security.bind(self._sock, bind)  # CURVE + allow-list with keys
        self._reply_seq = 0
        self._holder: bytes | None = None  # routing id of the peer that drives the arm
        self.requests = 0
        self.errors = 0

    def serve(self, stop_event: threading.Event) -> None:
        self.driver.connect()
        log.info("arm-server serving %s on %s", self.driver.spec.driver, self.endpoint)
        try:
            while not stop_event.is_set():
                self.poll_once()
        finally:
            self.driver.stop()
            self.driver.close()
            self._sock.close(linger=0)

    def poll_once(self) -> None:
        """Wait for one request (bounded by the watchdog), answer it, run the watchdog."""
        now = time.monotonic()
        if self._sock.poll(int(self.watchdog.wait_s(now) * 1000) + 1, zmq.POLLIN):
            parts = self._sock.recv_multipart()
            self._handle(parts)
        if self.watchdog.due(time.monotonic()):
            log.warning(
                "no request for %.3f s (limit %.3f s): stopping the arm",
                self.watchdog.last_trip_after_s, self.watchdog.timeout_s,
            )  # fmt: skip
            self.driver.stop()

    def _handle(self, parts: list[bytes]) -> None:
        if len(parts) < 2:
            return
        envelope, body = _split_envelope(parts)
        self.requests += 1
        try:
            decoded = wire.decode(body, expect=ArmRequest)
        except wire.WireError as exc:
            self.errors += 1
            log.warning("bad arm request: %s", exc)
            self._reply(envelope, ArmReply(req_seq=0, ok=False, error=str(exc)))
            return
        req = decoded.msg
        assert isinstance(req, ArmRequest)
        self._feed(envelope[0], req)
        reply, frames = self._execute(req)
        self._reply(envelope, reply, frames)

    def _feed(self, peer: bytes, req: ArmRequest) -> None:
        """Driving requests take the link; only the link's holder re-arms the watchdog."""
        if isinstance(req.body, Hello | ApplyAction | Home) and peer != self._holder:
            log.info("arm link now held by peer %s (%s)", peer.hex(), req.body.type)
            self._holder = peer
        if peer == self._holder:
            self.watchdog.feed(time.monotonic())

    def _execute(self, req: ArmRequest) -> tuple[ArmReply, dict[str, np.ndarray]]:
        body = req.body
        try:
            frames: dict[str, np.ndarray] = {}
            reply = ArmReply(req_seq=req.seq, ok=True)
            if isinstance(body, Hello):
                reply.spec = self.driver.spec
            elif isinstance(body, ApplyAction):
                self._apply(body)
            elif isinstance(body, Home):
                self.driver.home(randomize=body.randomize, seed=body.seed)
            elif isinstance(body, Stop):
                self.driver.stop()
            wants_images = isinstance(body, GetState | Home) and getattr(body, "images", True)
            if not isinstance(body, Heartbeat | Stop):
                state = self.driver.read_state(images=wants_images)
                reply.state = state_to_wire(state, self.watchdog)
                frames = {f"cam/{k}": v for k, v in state.images.items()}
            return reply, frames
        except (DriverError, ValueError) as exc:
            self.errors += 1
            log.warning("arm request %s failed: %s", body.type, exc)
            return ArmReply(req_seq=req.seq, ok=False, error=f"{body.type}: {exc}"), {}

    def _apply(self, body: ApplyAction) -> None:
        spec = self.driver.spec
        if max(abs(x) for x in body.delta_pos_m) > spec.max_translation_m * (1 + _LIMIT_TOL):
            raise ValueError(
                f"translation {body.delta_pos_m} exceeds {spec.max_translation_m} m per step"
            )
        if max(abs(x) for x in body.delta_rot_rad) > spec.max_rotation_rad * (1 + _LIMIT_TOL):
            raise ValueError(
                f"rotation {body.delta_rot_rad} exceeds {spec.max_rotation_rad} rad per step"
            )
        self.driver.apply(np.array(body.delta_pos_m), np.array(body.delta_rot_rad), body.gripper)

    def _reply(
        self, envelope: list[bytes], reply: ArmReply, frames: dict[str, np.ndarray] | None = None
    ) -> None:
        reply.seq = self._reply_seq
        self._reply_seq += 1
        try:
            self._sock.send_multipart(envelope + wire.encode(reply, frames), flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("reply to a slow client dropped")


def _split_envelope(parts: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """ROUTER parts -> (routing envelope, message). REQ clients add an empty delimiter."""
    if len(parts) > 1 and parts[1] == b"":
        return parts[:2], parts[2:]
    return parts[:1], parts[1:]


def make_driver(spec: str, settings: BridgeSettings) -> ArmDriver:
    """Build the driver named by ``spec``: mock, sim:lift or sim:drawer."""
    kwargs: dict[str, Any] = dict(
        image_size=settings.image_size, cameras=tuple(settings.cameras),
        max_translation_m=settings.max_translation_m, max_rotation_rad=settings.max_rotation_rad,
        arm_timeout_s=settings.arm_timeout_s,
    )  # fmt: skip
    if spec == "mock":
        return MockDriver(**kwargs)
    if spec.startswith("sim:"):
        from robot_bridge.sim_driver import SimDriver

        return SimDriver(spec.removeprefix("sim:"), horizon=settings.horizon, **kwargs)
    raise ValueError(f"unknown driver {spec!r}; use mock, sim:lift or sim:drawer")
