"""The bridges' live streams to browsers: robot state, camera frames, steps and episodes.

Fed on the server's loop with the batches ``BridgeStreams`` decoded once:

* ``status`` becomes the telemetry ``state`` of its robot (keep-latest) and
  teaches the registry which robot a bridge is; a finished scene reset (the
  bridge left ``await_reset``) goes to the reset sink;
* ``frame`` feeds the camera hubs (keep-latest), its JPEG passed on undecoded;
* ``step`` becomes a ``rollout`` sample and counts toward its episode's tally;
* ``episode`` becomes ``episode_start``, ``episode_label`` or, at the end, an
  ``episode_summary`` built from the tally.

Every browser message is a typed model of ``tandem.messages.telemetry``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from server.bridge_registry import BridgeInfo, BridgeRegistry, LinkStats, TaskSet
from server.fanout import Hubs
from tandem import wire
from tandem.messages import (
    SCHEMA_VERSION,
    BridgeStatus,
    CameraFrame,
    ControlMode,
    EpisodeEvent,
    EpisodeNotice,
    EpisodeSummary,
    Outcome,
    RobotState,
    RolloutSample,
    StepRecord,
    episode_result,
)
from tandem.messages.base import EpisodeResult
from tandem.subscriber import Malformed, Received

log = logging.getLogger(__name__)

MAX_OPEN_EPISODES = 64
# (robot id, reset requested, reset done) in Unix seconds; called when a reset ends
ResetSink = Callable[[str, float, float], Awaitable[None]]


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

    def add(self, rec: StepRecord) -> None:
        self.length += 1
        self.ret += rec.reward
        self.success = self.success or rec.success
        if rec.intervention:
            self.intervention_steps += 1
            self.interventions += int(not self.last_intervention)
        self.last_intervention = rec.intervention


class TelemetryRelay:
    """Turns decoded bridge messages into telemetry and camera hub messages (loop only)."""

    def __init__(
        self, registry: BridgeRegistry, hubs: Hubs, stats: LinkStats, tasks: TaskSet
    ) -> None:
        self.registry = registry
        self.hubs = hubs
        self.stats = stats
        self.reset_sink: ResetSink | None = None
        self._tasks = tasks
        self._tallies: dict[tuple[str, str], _EpisodeTally] = {}

    def on_batch(self, batch: list[Received]) -> None:
        for item in batch:
            bridge = self.registry.bridges[item.source]
            try:
                self._on_received(bridge, item)
            except (wire.WireError, ValueError) as exc:
                self.on_malformed(Malformed(item.source, item.topic.encode(), wire.WireError(exc)))

    def on_malformed(self, bad: Malformed) -> None:
        self.stats.bad_messages += 1
        endpoint = self.registry.bridges[bad.source].pub_endpoint
        log.warning("bad message from bridge %s: %s", endpoint, bad.error)

    def _on_received(self, bridge: BridgeInfo, item: Received) -> None:
        if item.decoded is None:
            if item.topic == CameraFrame.TOPIC:
                self._on_frame(bridge, *camera_frame(item.parts))
            return
        msg = item.decoded.msg
        if isinstance(msg, BridgeStatus):
            self._on_status(bridge, msg)
        elif isinstance(msg, StepRecord):
            self._on_step(msg)
        elif isinstance(msg, EpisodeEvent):
            self._on_episode(msg)

    # ------------------------------------------------------------ status
    def _on_status(self, bridge: BridgeInfo, status: BridgeStatus) -> None:
        self.stats.statuses += 1
        if bridge.robot_id != status.robot_id:
            log.info("bridge %s is robot %r", bridge.pub_endpoint, status.robot_id)
        bridge.robot_id = status.robot_id
        self._track_reset(bridge, status)
        bridge.status = status
        bridge.status_rx_mono = time.monotonic()
        self.hubs.telemetry.publish_latest(
            ("state", status.robot_id), RobotState.of(status).to_json()
        )

    def _track_reset(self, bridge: BridgeInfo, status: BridgeStatus) -> None:
        """A reset runs from entering ``await_reset`` until the bridge leaves it."""
        waiting = status.mode is ControlMode.AWAIT_RESET
        if waiting and bridge.reset_requested is None:
            bridge.reset_requested = status.t_wall
        elif not waiting and bridge.reset_requested is not None:
            requested, bridge.reset_requested = bridge.reset_requested, None
            if self.reset_sink is not None:
                reset = self.reset_sink(status.robot_id, requested, status.t_wall)
                self._tasks.spawn_once(reset, "reset bookkeeping")

    # ------------------------------------------------------------ frames
    def _on_frame(self, bridge: BridgeInfo, frame: CameraFrame, jpeg: bytes) -> None:
        self.stats.frames += 1
        # Capture time on the sender's wall clock: its monotonic stamp shifted by its clock offset.
        t_capture_wall = frame.t_wall - (frame.t_mono - frame.t_capture)
        packet = CameraPacket(frame.frame_seq, t_capture_wall, jpeg)
        for robot in {frame.robot_id, *([""] if bridge.index == 0 else [])}:
            hub = self.hubs.frame_hub(robot, frame.camera)
            if hub is not None:
                hub.publish_latest("frame", packet)

    # ------------------------------------------------------------ steps and episodes
    def _on_step(self, rec: StepRecord) -> None:
        self.stats.steps += 1
        self._tally(rec.robot_id, rec.episode_id, rec.episode_kind.value, rec.t_wall).add(rec)
        self.hubs.telemetry.publish_event(RolloutSample.of(rec).to_json())

    def _tally(self, robot_id: str, episode_id: str, kind: str, t_wall: float) -> _EpisodeTally:
        key = (robot_id, episode_id)
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= MAX_OPEN_EPISODES:
                self._tallies.pop(next(iter(self._tallies)))
            tally = self._tallies[key] = _EpisodeTally(kind, t_wall)
        return tally

    def _on_episode(self, event: EpisodeEvent) -> None:
        base = event.model_dump(include=set(EpisodeNotice.model_fields) - {"type"})
        if event.event == "start":
            self._tally(event.robot_id, event.episode_id, event.episode_kind.value, event.t_wall)
            notice = EpisodeNotice(type="episode_start", **base)
        elif event.event == "label":
            notice = EpisodeNotice(type="episode_label", **base)
        else:
            self.hubs.telemetry.publish_event(self._summary(event, base).to_json())
            return
        self.hubs.telemetry.publish_event(notice.to_json())

    def _summary(self, event: EpisodeEvent, base: dict[str, object]) -> EpisodeSummary:
        key = (event.robot_id, event.episode_id)
        tally = self._tallies.pop(key, None) or _EpisodeTally(event.episode_kind.value, 0.0)
        length = event.num_steps or tally.length
        success = tally.success or event.reason == "success"
        return EpisodeSummary.model_validate(
            {
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
        )


def _result(event: EpisodeEvent, success: bool, human_steps: int) -> EpisodeResult | None:
    """The live view of the store's result: the label first, then the task's signal."""
    if event.outcome is Outcome.DISCARD:
        return None
    if event.outcome is not None:
        success = event.outcome is Outcome.SUCCESS
    return episode_result(event.episode_kind, success, human_steps)


def camera_frame(parts: Sequence[wire.Buffer]) -> tuple[CameraFrame, bytes]:
    """Validate a ``frame`` message's header and return it with the JPEG bytes, undecoded.

    The live view forwards the bridge's JPEG as is; decoding it (as ``wire.decode``
    does) only to re-encode it would cost CPU per frame. Raises ``WireError``.
    """
    if len(parts) != 3:
        raise wire.WireError(f"frame: need topic, header and one image frame, got {len(parts)}")
    try:
        msg = CameraFrame.model_validate_json(bytes(parts[1]))
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
