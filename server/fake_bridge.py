"""A stand-in robot bridge on loopback ZMQ, for the server's tests and benchmarks.

It speaks the real protocol (``tandem.wire``): a ROUTER that answers every
``Command`` with a ``CommandReply`` from a small mode machine (idle, teleop,
rollout, intervention, await_reset, estop), and a PUB on which the caller
publishes ``BridgeStatus``, ``CameraFrame``, ``StepRecord`` and
``EpisodeEvent`` messages. It does not simulate a robot; the real bridge
lives in ``robot_bridge``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import zmq

from tandem import security, wire
from tandem.messages import (
    ActionSource,
    BridgeStatus,
    CameraFrame,
    Command,
    CommandReply,
    ControlMode,
    EpisodeEvent,
    EpisodeKind,
    FrameSpec,
    Message,
    PolicyInfo,
    Sequencer,
    StepRecord,
)

log = logging.getLogger(__name__)

M = ControlMode
# command type -> (modes it is accepted in, mode after it or None for unchanged)
TRANSITIONS: dict[str, tuple[set[ControlMode], ControlMode | None]] = {
    "start_demo": ({M.IDLE}, M.TELEOP),
    "start_rollout": ({M.IDLE}, M.ROLLOUT),
    "start_eval": ({M.IDLE, M.AWAIT_RESET}, M.ROLLOUT),
    "stop_eval": ({M.ROLLOUT, M.AWAIT_RESET, M.IDLE}, None),
    "take_over": ({M.ROLLOUT}, M.INTERVENTION),
    "hand_back": ({M.INTERVENTION}, M.ROLLOUT),
    "end_episode": ({M.TELEOP, M.ROLLOUT, M.INTERVENTION}, M.AWAIT_RESET),
    "reset_done": ({M.AWAIT_RESET}, M.IDLE),
    "teleop_action": ({M.TELEOP, M.INTERVENTION, M.AWAIT_RESET}, None),
    "label_episode": (set(M), None),
    "ping": (set(M), None),
    "estop": (set(M), M.ESTOP),
    "clear_estop": ({M.ESTOP}, M.IDLE),
}


@dataclass
class Received:
    """A command as the fake bridge received it (``t_rx``: its monotonic clock, s)."""

    command: Command
    t_rx: float


class FakeBridge:
    """ROUTER + PUB on free loopback ports; ``start``/``stop`` run the command thread."""

    def __init__(self, robot_id: str = "robot0", *, answer: bool = True) -> None:
        self.robot_id = robot_id
        self.answer = answer
        self.mode = ControlMode.IDLE
        self.received: list[Received] = []
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.MAXMSGSIZE, wire.SMALL_MSG_BYTES)
        self.cmd_endpoint = security.bind(self._router, "tcp://127.0.0.1:*")
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, 10_000)
        self._pub.setsockopt(zmq.MAXMSGSIZE, wire.SMALL_MSG_BYTES)  # it receives subscriptions
        self.pub_endpoint = security.bind(self._pub, "tcp://127.0.0.1:*")
        self._seq = Sequencer()
        self._pub_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-bridge", daemon=True)

    def start(self) -> FakeBridge:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._ctx.destroy(linger=0)

    # --------------------------------------------------------------- commands
    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(20):
                continue
            parts = self._router.recv_multipart()
            envelope, body = parts[:1], parts[1:]
            try:
                cmd = wire.decode(body, expect=Command).msg
            except wire.WireError as exc:
                log.warning("fake bridge: bad command: %s", exc)
                continue
            assert isinstance(cmd, Command)
            with self._cond:
                self.received.append(Received(cmd, time.monotonic()))
                reply = self._apply(cmd)
                self._cond.notify_all()
            if self.answer:
                self._router.send_multipart(envelope + wire.encode(reply))

    def _apply(self, cmd: Command) -> CommandReply:
        kind = cmd.body.type
        allowed, after = TRANSITIONS[kind]
        ok = self.mode in allowed
        reason = "" if ok else f"{kind} is not allowed in mode {self.mode.value}"
        if self.mode is M.ESTOP and kind not in ("clear_estop", "estop", "ping", "label_episode"):
            ok, reason = False, "e-stop is latched; clear it first"
        if ok and after is not None:
            self.mode = after
        return CommandReply(
            seq=self._seq.next(CommandReply.TOPIC),
            robot_id=self.robot_id,
            command_seq=cmd.seq,
            command_type=kind,
            ok=ok,
            reason=reason,
            mode=self.mode,
        )

    def wait_for(self, kind: str, timeout: float = 5.0, count: int = 1) -> list[Received]:
        """Block until ``count`` commands of type ``kind`` arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [r for r in self.received if r.command.body.type == kind]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self._cond.wait(left)

    # ----------------------------------------------------------------- publish
    def publish(
        self,
        msg: Message,
        frames: dict[str, np.ndarray | bytes] | None = None,
        jpeg: tuple[str, ...] = (),
    ) -> None:
        with self._pub_lock:
            msg = msg.model_copy(update={"seq": self._seq.next(msg.TOPIC)})
            self._pub.send_multipart(wire.encode(msg, frames, jpeg=jpeg))

    def publish_raw(self, parts: list[bytes]) -> None:
        """Send arbitrary bytes on the PUB (to test how receivers handle garbage)."""
        with self._pub_lock:
            self._pub.send_multipart(parts)

    def publish_status(self, **fields: object) -> None:
        defaults: dict[str, object] = {
            "robot_id": self.robot_id,
            "robot": "fake",
            "mode": self.mode,
            "ee_pos": [0.5, 0.0, 0.2],
            "gripper": 0.0,
        }
        self.publish(BridgeStatus.model_validate({**defaults, **fields}))

    def publish_frame(
        self,
        camera: str,
        jpeg: bytes,
        frame_seq: int,
        t_capture: float,
        shape: tuple[int, int] = (96, 96),
    ) -> None:
        """Publish a pre-encoded JPEG as the real bridge does (a ``jpeg`` frame of ``shape``)."""
        spec = FrameSpec(
            name="image", encoding="jpeg", nbytes=len(jpeg), dtype="uint8", shape=[*shape, 3]
        )
        with self._pub_lock:
            msg = CameraFrame(
                seq=self._seq.next(CameraFrame.TOPIC),
                robot_id=self.robot_id,
                camera=camera,
                frame_seq=frame_seq,
                t_capture=t_capture,
                frames=[spec],
            )
            self._pub.send_multipart([b"frame", msg.model_dump_json().encode(), jpeg])

    def publish_step(
        self,
        episode_id: str,
        step: int,
        *,
        kind: EpisodeKind = EpisodeKind.ROLLOUT,
        images: dict[str, np.ndarray] | None = None,
        reward: float = 0.0,
        intervention: bool = False,
        q: tuple[float, float] | None = None,
    ) -> None:
        info = None if q is None else PolicyInfo(proposal="rl", q_il=q[0], q_rl=q[1])
        rec = StepRecord(
            robot_id=self.robot_id,
            episode_id=episode_id,
            episode_kind=kind,
            step=step,
            mode=M.INTERVENTION if intervention else M.ROLLOUT,
            state=[float(step), 0.0, 0.0],
            action=[0.1] * 7,
            policy_action=[0.2] * 7,
            human_action=[0.3] * 7 if intervention else None,
            action_source=ActionSource.HUMAN if intervention else ActionSource.POLICY,
            intervention=intervention,
            reward=reward,
            t_obs=time.monotonic(),
            policy_info=info,
        )
        frames: dict[str, np.ndarray | bytes] = {
            f"cam/{name}": img for name, img in (images or {}).items()
        }
        self.publish(rec, frames)

    def publish_episode(
        self,
        episode_id: str,
        event: str,
        *,
        kind: EpisodeKind = EpisodeKind.ROLLOUT,
        **fields: object,
    ) -> None:
        msg = EpisodeEvent.model_validate(
            {
                "robot_id": self.robot_id,
                "episode_id": episode_id,
                "episode_kind": kind,
                "event": event,
                **fields,
            }
        )
        self.publish(msg)
