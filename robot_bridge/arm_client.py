"""Client side of the arm protocol: an ``ArmDriver`` whose arm sits behind an arm-server.

Every request has a timeout. A request that times out raises ``LinkError`` and
the DEALER socket is thrown away (LINGER 0, IMMEDIATE), so no stale request is
ever delivered to an arm-server that comes back later, and a late reply can
never be mistaken for the answer to a newer request.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import zmq

from robot_bridge.driver import ArmDriver, DriverError
from robot_bridge.types import RobotState
from tandem import security, wire
from tandem.messages import Sequencer
from tandem.messages.arm import (
    ApplyAction,
    ArmReply,
    ArmRequest,
    ArmRequestBody,
    ArmSpec,
    GetState,
    Heartbeat,
    Hello,
    Home,
    Stop,
)

log = logging.getLogger(__name__)
HOME_TIMEOUT_S = 2.0


class LinkError(DriverError):
    """The arm-server did not answer in time (or cannot be reached)."""


class ArmClient:
    """Request/reply over a DEALER socket with a timeout on every request."""

    def __init__(
        self, endpoint: str, timeout_s: float, *, context: zmq.Context | None = None
    ) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._seq = Sequencer()
        self.last_ok: float | None = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.RECONNECT_IVL, 50)
            sock.setsockopt(zmq.MAXMSGSIZE, wire.MEDIA_MSG_BYTES)  # replies carry images
            security.connect(sock, self.endpoint)
            self._sock = sock
        return self._sock

    def reset(self) -> None:
        """Drop the socket with anything queued on it."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def close(self) -> None:
        self.reset()

    def request(
        self, body: ArmRequestBody, timeout_s: float | None = None
    ) -> tuple[ArmReply, dict[str, np.ndarray]]:
        """Send one request and wait for its reply; ``LinkError`` on timeout."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        sock = self._socket()
        req = ArmRequest(seq=self._seq.next(ArmRequest.TOPIC), body=body)
        if not sock.poll(_ms(deadline), zmq.POLLOUT):
            self.reset()
            raise LinkError(f"arm-server at {self.endpoint} not reachable within {timeout:.3f} s")
        sock.send_multipart(wire.encode(req), flags=zmq.NOBLOCK)
        while sock.poll(_ms(deadline), zmq.POLLIN):
            try:
                decoded = wire.decode(sock.recv_multipart(), expect=ArmReply)
            except wire.WireError as exc:
                log.warning("bad reply from arm-server: %s", exc)
                continue
            reply = decoded.msg
            assert isinstance(reply, ArmReply)
            if reply.req_seq != req.seq:
                continue  # a late answer to an older request
            self.last_ok = time.monotonic()
            if not reply.ok:
                raise DriverError(f"arm-server refused {body.type}: {reply.error}")
            images = {k[4:]: v for k, v in decoded.frames.items() if k.startswith("cam/")}
            return reply, {k: np.asarray(v) for k, v in images.items()}
        self.reset()
        raise LinkError(
            f"arm-server at {self.endpoint}: no reply to {body.type} in {timeout:.3f} s"
        )


def _ms(deadline: float) -> int:
    return max(0, int((deadline - time.monotonic()) * 1000))


class RemoteDriver(ArmDriver):
    """The arm behind an arm-server, seen as an ``ArmDriver``."""

    def __init__(self, client: ArmClient, spec: ArmSpec | None = None) -> None:
        self.client = client
        self._spec = spec
        self._gripper = -1.0

    def hello(self, timeout_s: float | None = None) -> ArmSpec:
        reply, _ = self.client.request(Hello(), timeout_s)
        if reply.spec is None:
            raise DriverError("arm-server answered hello without a spec")
        self._spec = reply.spec
        return reply.spec

    @property
    def spec(self) -> ArmSpec:
        if self._spec is None:
            raise DriverError("spec unknown until the arm-server has answered hello")
        return self._spec

    def connect(self) -> None:
        self.hello()

    def close(self) -> None:
        self.client.close()

    def read_state(self, images: bool = True) -> RobotState:
        reply, frames = self.client.request(GetState(images=images))
        return _state(reply, frames)

    def move_ee(self, delta_pos: np.ndarray, delta_rot: np.ndarray) -> None:
        self.apply(delta_pos, delta_rot, self._gripper)

    def set_gripper(self, command: float) -> None:
        self._gripper = float(command)

    def apply(self, delta_pos: np.ndarray, delta_rot: np.ndarray, gripper: float) -> None:
        self.step(delta_pos, delta_rot, gripper)

    def step(self, delta_pos: np.ndarray, delta_rot: np.ndarray, gripper: float) -> RobotState:
        """One ``apply_action`` request; its reply carries the measured state."""
        self._gripper = float(gripper)
        body = ApplyAction(
            delta_pos_m=[float(x) for x in delta_pos],
            delta_rot_rad=[float(x) for x in delta_rot], gripper=self._gripper,
        )  # fmt: skip
        return _state(*self.client.request(body))

    def home(self, randomize: bool = False, seed: int | None = None) -> None:
        # Homing (a scene reset in a sim) may take longer than a control step; it only
        # happens when an episode starts, and the loop counts the ticks it skips.
        self.client.request(Home(randomize=randomize, seed=seed), HOME_TIMEOUT_S)

    def stop(self) -> None:
        self.client.request(Stop())

    def heartbeat(self) -> None:
        self.client.request(Heartbeat())


def _state(reply: ArmReply, frames: dict[str, np.ndarray]) -> RobotState:
    if reply.state is None:
        raise DriverError("arm-server reply carries no state")
    s = reply.state
    return RobotState(
        state=np.asarray(s.state, dtype=np.float32), ee_pos=np.asarray(s.ee_pos),
        ee_quat=np.asarray(s.ee_quat), gripper=s.gripper, t=time.monotonic(), reward=s.reward,
        success=s.success, images=frames, stopped=s.stopped,
    )  # fmt: skip
