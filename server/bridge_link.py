"""The server's ZMQ link to the robot bridges and the learner.

Per bridge ``i`` (``settings.bridges[i]`` paired with
``settings.bridge_cmd_endpoints[i]``):

* a DEALER connected to the bridge's command ROUTER. ``command`` sends a
  ``tandem.messages.Command`` and awaits the ``CommandReply`` whose
  ``command_seq`` matches, with a timeout. Teleop actions go through a
  keep-latest slot: only the newest unsent action is ever sent.
* a SUB to the bridge's PUB (``status``, ``frame``, ``step``, ``episode``):
  status becomes telemetry ``state`` (keep-latest), frames feed the camera
  hubs (keep-latest), steps feed the live ``rollout`` stream and per-episode
  summaries.

One SUB to the learner's metrics PUB collects ``LearnerMetrics`` and sends
them to dashboards in batches every ``metrics_batch_s`` (and to the store's
metrics history). Everything runs as asyncio tasks on the server's loop; a
malformed message is counted and logged and never stops a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import zmq
import zmq.asyncio

from server.fanout import Hubs
from tandem import security, wire
from tandem.messages import (
    SCHEMA_VERSION,
    BridgeStatus,
    CameraFrame,
    Command,
    CommandBody,
    CommandReply,
    ControlMode,
    EpisodeEvent,
    LearnerMetrics,
    Outcome,
    Sequencer,
    StepRecord,
    TeleopAction,
    episode_result,
)
from tandem.settings import ServerSettings

log = logging.getLogger(__name__)

MAX_OPEN_EPISODES = 64
RESTART_DELAY_S = 0.5
MetricsSink = Callable[[list[LearnerMetrics]], Awaitable[None]]
# (robot id, reset requested, reset done) in Unix seconds; called when a reset ends
ResetSink = Callable[[str, float, float], Awaitable[None]]


class BridgeError(RuntimeError):
    """A command could not be delivered or was not answered in time."""


@dataclass
class CameraPacket:
    """One live frame as queued for camera clients (header is built at send time)."""

    frame_seq: int
    t_capture_wall: float
    jpeg: bytes


@dataclass
class _EpisodeTally:
    kind: str
    started_wall: float
    length: int = 0
    ret: float = 0.0
    success: bool = False
    interventions: int = 0
    intervention_steps: int = 0
    last_intervention: bool = False


@dataclass
class _Bridge:
    index: int
    pub_endpoint: str
    cmd_endpoint: str
    dealer: zmq.asyncio.Socket | None = None
    sub: zmq.asyncio.Socket | None = None
    robot_id: str | None = None
    status: BridgeStatus | None = None
    status_rx_mono: float = 0.0
    reset_requested: float | None = None
    pending: dict[int, asyncio.Future[CommandReply]] = field(default_factory=dict)
    action: Command | None = None
    action_ready: asyncio.Event = field(default_factory=asyncio.Event)
    actions_sent: int = 0
    actions_replaced: int = 0


@dataclass
class LinkStats:
    bad_messages: int = 0
    frames: int = 0
    steps: int = 0
    statuses: int = 0
    replies: int = 0
    stray_replies: int = 0
    refused_actions: int = 0
    metrics: int = 0


class BridgeLink:
    """Commands to, and live streams from, every configured bridge and the learner."""

    def __init__(
        self,
        settings: ServerSettings,
        hubs: Hubs,
        *,
        metrics_sink: MetricsSink | None = None,
    ) -> None:
        if len(settings.bridges) != len(settings.bridge_cmd_endpoints):
            raise ValueError(
                f"server.bridges has {len(settings.bridges)} endpoints but "
                f"server.bridge_cmd_endpoints has {len(settings.bridge_cmd_endpoints)}; "
                "they must pair up in order"
            )
        self.settings = settings
        self.hubs = hubs
        self.stats = LinkStats()
        self._metrics_sink = metrics_sink
        self._reset_sink: ResetSink | None = None
        self._bridges = [
            _Bridge(i, pub, cmd)
            for i, (pub, cmd) in enumerate(
                zip(settings.bridges, settings.bridge_cmd_endpoints, strict=True)
            )
        ]
        self._seq = Sequencer()
        self._ctx: zmq.asyncio.Context | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._oneshots: set[asyncio.Task[None]] = set()
        self._tallies: dict[tuple[str, str], _EpisodeTally] = {}
        self._metrics_buf: list[LearnerMetrics] = []
        self.latest_metrics: dict[str, LearnerMetrics] = {}

    def set_metrics_sink(self, sink: MetricsSink | None) -> None:
        """Where batches of learner metrics go besides the dashboards (the store's history)."""
        self._metrics_sink = sink

    def set_reset_sink(self, sink: ResetSink | None) -> None:
        """Where finished scene resets (await_reset -> another mode) are reported."""
        self._reset_sink = sink

    # ----------------------------------------------------------------- life cycle
    async def start(self) -> None:
        """Open the sockets and start the receive/send tasks."""
        self._ctx = zmq.asyncio.Context()
        for bridge in self._bridges:
            bridge.pending = {}  # loop-bound objects are made on the running loop
            bridge.action, bridge.action_ready = None, asyncio.Event()
            bridge.dealer = self._socket(zmq.DEALER, bridge.cmd_endpoint)
            bridge.sub = self._socket(zmq.SUB, bridge.pub_endpoint, subscribe=True)
            self._spawn(partial(self._reply_loop, bridge), f"replies[{bridge.index}]")
            self._spawn(partial(self._action_loop, bridge), f"actions[{bridge.index}]")
            self._spawn(partial(self._sub_loop, bridge), f"bridge-sub[{bridge.index}]")
        endpoint = self.settings.learner_metrics_endpoint
        if endpoint:
            metrics_sub = self._socket(zmq.SUB, endpoint, subscribe=True)
            self._spawn(partial(self._metrics_loop, metrics_sub), "metrics-sub")
            self._spawn(self._metrics_flush_loop, "metrics-flush")
        log.debug("bridge link: %d bridge(s), metrics from %s", len(self._bridges), endpoint)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._oneshots]:
            task.cancel()
        for task in [*self._tasks, *self._oneshots]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._oneshots.clear()
        for bridge in self._bridges:
            for fut in bridge.pending.values():
                if not fut.done():
                    fut.set_exception(BridgeError("server is shutting down"))
            bridge.pending.clear()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None

    def _socket(self, kind: int, endpoint: str, *, subscribe: bool = False) -> zmq.asyncio.Socket:
        assert self._ctx is not None
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        big = kind != zmq.DEALER  # replies are small; the bridge publishes images
        sock.setsockopt(zmq.MAXMSGSIZE, wire.MEDIA_MSG_BYTES if big else wire.SMALL_MSG_BYTES)
        if kind == zmq.DEALER:
            sock.setsockopt(zmq.SNDHWM, 100)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # do not queue commands for a bridge not there
        if subscribe:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.setsockopt(zmq.RCVHWM, 1000)
        security.connect(sock, endpoint)
        return sock

    def _spawn(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(self._guard(loop, name)))

    @staticmethod
    async def _guard(loop: Callable[[], Awaitable[None]], name: str) -> None:
        """Run ``loop`` forever: a bug or socket error is logged and the loop restarts."""
        while True:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the link alive; the traceback makes the fault visible
                log.exception("bridge link task %s failed; restarting it in 0.5 s", name)
            await asyncio.sleep(RESTART_DELAY_S)

    # ------------------------------------------------------------------- queries
    def robots(self) -> list[str]:
        """Robot ids seen so far, in bridge order."""
        return [b.robot_id for b in self._bridges if b.robot_id is not None]

    def default_robot(self) -> str | None:
        return self._bridges[0].robot_id if self._bridges else None

    def statuses(self) -> list[tuple[int, str, BridgeStatus | None, float | None]]:
        """(index, pub endpoint, latest status, its age in s) for every configured bridge."""
        now = time.monotonic()
        return [
            (b.index, b.pub_endpoint, b.status, now - b.status_rx_mono if b.status else None)
            for b in self._bridges
        ]

    def status(self, robot_id: str | None) -> BridgeStatus | None:
        bridge = self._find(robot_id)
        return bridge.status if bridge else None

    def resolve_robot(self, robot_id: str | None) -> str:
        """The robot id a request means (the first bridge's when not given)."""
        bridge = self._find(robot_id)
        if bridge is None:
            raise BridgeError(self._unknown(robot_id))
        return bridge.robot_id or robot_id or ""

    def bridge_key(self, robot_id: str | None, *, index: int | None = None) -> str:
        """A stable key of the bridge serving ``robot_id`` (or bridge ``index``), for leases.

        It does not change when the bridge's robot id becomes known.
        """
        bridge = self._bridges[index] if index is not None else self._find(robot_id)
        if bridge is None:
            raise BridgeError(self._unknown(robot_id))
        return f"bridge{bridge.index}"

    def _find(self, robot_id: str | None) -> _Bridge | None:
        if not robot_id:
            return self._bridges[0] if self._bridges else None
        return next((b for b in self._bridges if b.robot_id == robot_id), None)

    def _unknown(self, robot_id: str | None) -> str:
        if not self._bridges:
            return "no bridge is configured (server.bridges is empty)"
        return f"unknown robot {robot_id!r}; known: {self.robots()}"

    # ------------------------------------------------------------------ commands
    async def command(
        self, body: CommandBody, robot_id: str | None = None, timeout_s: float | None = None
    ) -> CommandReply:
        """Send one command and await the bridge's reply; raise BridgeError on failure."""
        bridge = self._find(robot_id)
        if bridge is None or bridge.dealer is None:
            raise BridgeError(self._unknown(robot_id))
        cmd = Command(seq=self._seq.next(Command.TOPIC), robot_id=bridge.robot_id, body=body)
        fut: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        bridge.pending[cmd.seq] = fut
        timeout = timeout_s if timeout_s is not None else self.settings.command_timeout_s
        deadline = time.monotonic() + timeout
        try:
            # IMMEDIATE: the send waits for a live connection instead of queueing for a
            # bridge that is not there; both waits share one deadline.
            await asyncio.wait_for(bridge.dealer.send_multipart(wire.encode(cmd)), timeout)
        except TimeoutError:
            bridge.pending.pop(cmd.seq, None)
            raise BridgeError(
                f"bridge {bridge.cmd_endpoint} is not reachable (no connection within "
                f"{timeout:.2f} s); {body.type} not sent"
            ) from None
        try:
            return await asyncio.wait_for(fut, max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            raise BridgeError(
                f"bridge {bridge.cmd_endpoint} did not answer {body.type} within {timeout:.2f} s"
            ) from None
        finally:
            bridge.pending.pop(cmd.seq, None)

    async def command_all(
        self, make_body: Callable[[], CommandBody]
    ) -> list[tuple[str, CommandReply | BridgeError]]:
        """Send a command to every bridge at once; (robot or endpoint, reply or error) each."""

        async def one(bridge: _Bridge) -> tuple[str, CommandReply | BridgeError]:
            name = bridge.robot_id or bridge.cmd_endpoint
            try:
                return name, await self._command_bridge(bridge, make_body())
            except BridgeError as exc:
                return name, exc

        return list(await asyncio.gather(*(one(b) for b in self._bridges)))

    async def _command_bridge(self, bridge: _Bridge, body: CommandBody) -> CommandReply:
        if bridge.robot_id is not None:
            return await self.command(body, bridge.robot_id)
        if bridge.index == 0:
            return await self.command(body, None)
        raise BridgeError(f"bridge {bridge.pub_endpoint} has not published a status yet")

    def send_action(self, action: TeleopAction, robot_id: str | None = None) -> None:
        """Queue a teleop action keep-latest (an unsent older one is replaced)."""
        bridge = self._find(robot_id)
        if bridge is None:
            raise BridgeError(self._unknown(robot_id))
        if bridge.action is not None:
            bridge.actions_replaced += 1
        bridge.action = Command(robot_id=bridge.robot_id, body=action)
        bridge.action_ready.set()

    async def _action_loop(self, bridge: _Bridge) -> None:
        assert bridge.dealer is not None
        while True:
            await bridge.action_ready.wait()
            bridge.action_ready.clear()
            cmd, bridge.action = bridge.action, None
            if cmd is None:
                continue
            cmd = cmd.model_copy(update={"seq": self._seq.next(Command.TOPIC)})
            try:
                await bridge.dealer.send_multipart(wire.encode(cmd), flags=zmq.NOBLOCK)
                bridge.actions_sent += 1
            except zmq.Again:
                log.debug("teleop action dropped: bridge %s not connected", bridge.cmd_endpoint)

    async def _reply_loop(self, bridge: _Bridge) -> None:
        assert bridge.dealer is not None
        while True:
            parts = await bridge.dealer.recv_multipart()
            while parts and not parts[0]:
                parts = parts[1:]  # a ROUTER written for REQ peers may add an empty delimiter
            try:
                reply = wire.decode(parts, expect=CommandReply).msg
            except wire.WireError as exc:
                self.stats.bad_messages += 1
                log.warning("bad reply from bridge %s: %s", bridge.cmd_endpoint, exc)
                continue
            assert isinstance(reply, CommandReply)
            self.stats.replies += 1
            fut = bridge.pending.get(reply.command_seq)
            if fut is not None and not fut.done():
                fut.set_result(reply)
            elif not reply.ok:  # a refused keep-latest teleop action (nobody awaits those)
                self.stats.refused_actions += 1
                if self.stats.refused_actions <= 10 or self.stats.refused_actions % 100 == 0:
                    log.info(
                        "bridge refused %s (%d so far): %s",
                        reply.command_type,
                        self.stats.refused_actions,
                        reply.reason,
                    )
            elif reply.command_type != "teleop_action":
                self.stats.stray_replies += 1

    # ------------------------------------------------------------ bridge streams
    async def _sub_loop(self, bridge: _Bridge) -> None:
        assert bridge.sub is not None
        while True:
            parts = await bridge.sub.recv_multipart()
            try:
                if parts and parts[0] == CameraFrame.TOPIC.encode():
                    self._on_frame(bridge, *camera_frame(parts))  # JPEG passed through undecoded
                else:
                    self._on_bridge_message(bridge, wire.decode(parts))
            except (wire.WireError, ValueError) as exc:
                self.stats.bad_messages += 1
                log.warning("bad message from bridge %s: %s", bridge.pub_endpoint, exc)

    def _on_bridge_message(self, bridge: _Bridge, decoded: wire.Decoded) -> None:
        msg = decoded.msg
        if isinstance(msg, BridgeStatus):
            self._on_status(bridge, msg)
        elif isinstance(msg, StepRecord):
            self._on_step(msg)
        elif isinstance(msg, EpisodeEvent):
            self._on_episode(msg)

    def _on_status(self, bridge: _Bridge, status: BridgeStatus) -> None:
        self.stats.statuses += 1
        if bridge.robot_id != status.robot_id:
            log.info("bridge %s is robot %r", bridge.pub_endpoint, status.robot_id)
        bridge.robot_id = status.robot_id
        self._track_reset(bridge, status)
        bridge.status = status
        bridge.status_rx_mono = time.monotonic()
        payload = {"type": "state", **status.model_dump(mode="json", exclude={"frames"})}
        self.hubs.telemetry.publish_latest(("state", status.robot_id), to_json(payload))

    def _track_reset(self, bridge: _Bridge, status: BridgeStatus) -> None:
        """A reset runs from entering ``await_reset`` until the bridge leaves it."""
        waiting = status.mode is ControlMode.AWAIT_RESET
        if waiting and bridge.reset_requested is None:
            bridge.reset_requested = status.t_wall
        elif not waiting and bridge.reset_requested is not None:
            requested, bridge.reset_requested = bridge.reset_requested, None
            if self._reset_sink is not None:
                self._spawn_once(self._reset_sink(status.robot_id, requested, status.t_wall))

    def _spawn_once(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:  # bookkeeping must not disturb the live streams
                log.exception("reset bookkeeping failed")

        task = asyncio.ensure_future(run())
        self._oneshots.add(task)
        task.add_done_callback(self._oneshots.discard)

    def _on_frame(self, bridge: _Bridge, frame: CameraFrame, jpeg: bytes) -> None:
        self.stats.frames += 1
        # Capture time on the sender's wall clock: its monotonic stamp shifted by its clock offset.
        t_capture_wall = frame.t_wall - (frame.t_mono - frame.t_capture)
        packet = CameraPacket(frame.frame_seq, t_capture_wall, jpeg)
        for robot in {frame.robot_id, *([""] if bridge.index == 0 else [])}:
            hub = self.hubs.frame_hub(robot, frame.camera)
            if hub is not None:
                hub.publish_latest("frame", packet)

    def _on_step(self, rec: StepRecord) -> None:
        self.stats.steps += 1
        tally = self._tally(rec.robot_id, rec.episode_id, rec.episode_kind.value, rec.t_wall)
        tally.length += 1
        tally.ret += rec.reward
        tally.success = tally.success or rec.success
        if rec.intervention:
            tally.intervention_steps += 1
            tally.interventions += int(not tally.last_intervention)
        tally.last_intervention = rec.intervention
        info = rec.policy_info
        self.hubs.telemetry.publish_event(
            to_json(
                {
                    "type": "rollout",
                    "robot_id": rec.robot_id,
                    "episode_id": rec.episode_id,
                    "episode_kind": rec.episode_kind.value,
                    "step": rec.step,
                    "mode": rec.mode.value,
                    "source": rec.action_source.value,
                    "intervention": rec.intervention,
                    "reward": rec.reward,
                    "success": rec.success,
                    "action": rec.action,
                    "policy_action": rec.policy_action,
                    "human_action": rec.human_action,
                    "state": rec.state,
                    "proposal": info.proposal if info else None,
                    "q_il": info.q_il if info else None,
                    "q_rl": info.q_rl if info else None,
                    "weights_version": info.weights_version if info else None,
                    "t_wall": rec.t_wall,
                }
            )
        )

    def _tally(self, robot_id: str, episode_id: str, kind: str, t_wall: float) -> _EpisodeTally:
        key = (robot_id, episode_id)
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= MAX_OPEN_EPISODES:
                self._tallies.pop(next(iter(self._tallies)))
            tally = self._tallies[key] = _EpisodeTally(kind, t_wall)
        return tally

    def _on_episode(self, event: EpisodeEvent) -> None:
        key = (event.robot_id, event.episode_id)
        base = {
            "robot_id": event.robot_id,
            "episode_id": event.episode_id,
            "episode_kind": event.episode_kind.value,
            "reason": event.reason,
            "outcome": event.outcome.value if event.outcome else None,
            "weights_version": event.weights_version,
            "eval_batch": event.eval_batch,
            "eval_index": event.eval_index,
            "t_wall": event.t_wall,
        }
        if event.event == "start":
            self._tally(event.robot_id, event.episode_id, event.episode_kind.value, event.t_wall)
            self.hubs.telemetry.publish_event(to_json({"type": "episode_start", **base}))
            return
        if event.event == "label":
            self.hubs.telemetry.publish_event(to_json({"type": "episode_label", **base}))
            return
        tally = self._tallies.pop(key, None) or _EpisodeTally(event.episode_kind.value, 0.0)
        length = event.num_steps or tally.length
        success = tally.success or event.reason == "success"
        summary = {
            "type": "episode_summary",
            **base,
            "length": length,
            "return": tally.ret,
            "success": success,
            "result": _result(event, success, tally.intervention_steps),
            "interventions": tally.interventions,
            "intervention_steps": tally.intervention_steps,
            "intervention_rate": tally.intervention_steps / length if length else 0.0,
            "duration_s": event.t_wall - tally.started_wall if tally.started_wall else None,
            "terminated": event.terminated,
            "truncated": event.truncated,
        }
        self.hubs.telemetry.publish_event(to_json(summary))

    # ----------------------------------------------------------- learner metrics
    async def _metrics_loop(self, sub: zmq.asyncio.Socket) -> None:
        while True:
            parts = await sub.recv_multipart()
            try:
                msg = wire.decode(parts, expect=LearnerMetrics).msg
            except wire.WireError as exc:
                self.stats.bad_messages += 1
                log.warning("bad learner metrics message: %s", exc)
                continue
            assert isinstance(msg, LearnerMetrics)
            self.stats.metrics += 1
            self.latest_metrics[msg.run_id] = msg
            self._metrics_buf.append(msg)
            if len(self._metrics_buf) > 10_000:  # bounded even if the flush task stalls
                del self._metrics_buf[: len(self._metrics_buf) // 2]

    async def _metrics_flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.metrics_batch_s)
            if not self._metrics_buf:
                continue
            batch, self._metrics_buf = self._metrics_buf, []
            rows = [metrics_row(m) for m in batch]
            self.hubs.telemetry.publish_event(to_json({"type": "metrics", "rows": rows}))
            if self._metrics_sink is not None:
                try:
                    await self._metrics_sink(batch)
                except Exception:  # the history is best effort; live charts must go on
                    log.exception("could not store %d metric messages", len(batch))


def _result(event: EpisodeEvent, success: bool, human_steps: int) -> str | None:
    """The live view of the store's result: the label first, then the task's signal."""
    if event.outcome is Outcome.DISCARD:
        return None
    if event.outcome is not None:
        success = event.outcome is Outcome.SUCCESS
    result = episode_result(event.episode_kind, success, human_steps)
    return None if result is None else result.value


def camera_frame(parts: list[bytes]) -> tuple[CameraFrame, bytes]:
    """Validate a ``frame`` message's header and return it with the JPEG bytes, undecoded.

    The live view forwards the bridge's JPEG as is; decoding it (as ``wire.decode``
    does) only to re-encode it would cost CPU per frame. Raises ``WireError``.
    """
    if len(parts) != 3:
        raise wire.WireError(f"frame: need topic, header and one image frame, got {len(parts)}")
    try:
        msg = CameraFrame.model_validate_json(parts[1])
    except ValueError as exc:
        raise wire.WireError(f"frame: invalid header: {exc}") from None
    if msg.v != SCHEMA_VERSION:
        raise wire.WireError(f"frame: unsupported schema version {msg.v}")
    specs = msg.frames
    if len(specs) != 1 or specs[0].name != "image" or specs[0].encoding not in ("jpeg", "bytes"):
        raise wire.WireError(f"frame: expected one JPEG frame named 'image', header has {specs}")
    if specs[0].nbytes != len(parts[2]):
        raise wire.WireError(f"frame: header says {specs[0].nbytes} bytes, got {len(parts[2])}")
    return msg, bytes(parts[2])


def metrics_row(msg: LearnerMetrics) -> dict[str, Any]:
    return {
        "run_id": msg.run_id,
        "update_step": msg.update_step,
        "env_steps": msg.env_steps,
        "t_wall": msg.t_wall,
        "scalars": finite_json(msg.metrics),
    }


def to_json(payload: dict[str, Any]) -> str:
    """Strict JSON (NaN and infinities become null), serialized once for every client."""
    return json.dumps(finite_json(payload), separators=(",", ":"), allow_nan=False)


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value
