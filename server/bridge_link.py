"""The server's ZMQ link to the robot bridges and the learner, one part per resource.

* ``BridgeRegistry`` (``server.bridge_registry``): the configured bridges, the
  robot id each one serves, its latest status.
* ``CommandLink`` (``server.command_link``): a DEALER per bridge for commands
  and keep-latest teleop actions.
* ``BridgeStreams`` (``server.bridge_streams``): the one subscription to every
  bridge's PUB; each message is decoded once and fed to the recorder (on the
  streams thread) and to the ``TelemetryRelay`` (``server.telemetry_relay``, on
  the loop), which fans state, frames, steps and episodes out to browsers.
* ``LearnerMetricsRelay`` (``server.learner_metrics``): the learner's metrics
  to dashboards and the store's history.

``BridgeLink`` builds them from ``ServerSettings`` and starts and stops them
together. A malformed message is counted (``stats``) and logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import zmq.asyncio

from server.bridge_registry import BridgeError, BridgeRegistry, LinkStats, TaskSet
from server.bridge_streams import BridgeStreams, LoopInbox
from server.command_link import CommandLink
from server.fanout import Hubs
from server.learner_metrics import LearnerMetricsRelay, MetricsSink, metrics_row
from server.telemetry_relay import CameraPacket, ResetSink, TelemetryRelay, camera_frame
from tandem.messages import BridgeStatus, CommandBody, CommandReply, LearnerMetrics, TeleopAction
from tandem.messages.telemetry import finite_json, to_json
from tandem.settings import ServerSettings

log = logging.getLogger(__name__)

STATUS_POLL_S = 0.02  # status_after's polling period

__all__ = [
    "BridgeError",
    "BridgeLink",
    "CameraPacket",
    "LinkStats",
    "camera_frame",
    "finite_json",
    "metrics_row",
    "to_json",
]


class BridgeLink:
    """Commands to, and live streams from, every configured bridge and the learner."""

    def __init__(
        self,
        settings: ServerSettings,
        hubs: Hubs,
        *,
        metrics_sink: MetricsSink | None = None,
    ) -> None:
        self.settings = settings
        self.hubs = hubs
        self.stats = LinkStats()
        self.registry = BridgeRegistry(settings.bridges, settings.bridge_cmd_endpoints)
        self.commands = CommandLink(self.registry, self.stats, settings.command_timeout_s)
        self.streams = BridgeStreams(settings.bridges)
        self._tasks = TaskSet()
        self.relay = TelemetryRelay(self.registry, hubs, self.stats, self._tasks)
        endpoint = settings.learner_metrics_endpoint
        self.metrics = (
            LearnerMetricsRelay(endpoint, hubs, self.stats, settings.metrics_batch_s)
            if endpoint
            else None
        )
        self.set_metrics_sink(metrics_sink)
        self._inbox: LoopInbox | None = None
        self._ctx: zmq.asyncio.Context | None = None

    @property
    def latest_metrics(self) -> dict[str, LearnerMetrics]:
        """The newest metrics message of every learner run seen."""
        return self.metrics.latest if self.metrics else {}

    def set_metrics_sink(self, sink: MetricsSink | None) -> None:
        """Where batches of learner metrics go besides the dashboards (the store's history)."""
        if self.metrics is not None:
            self.metrics.sink = sink

    def set_reset_sink(self, sink: ResetSink | None) -> None:
        """Where finished scene resets (await_reset -> another mode) are reported."""
        self.relay.reset_sink = sink

    # ----------------------------------------------------------------- life cycle
    async def start(self) -> None:
        """Open the sockets and start the receive/send tasks and the streams thread."""
        self._ctx = zmq.asyncio.Context()
        self.commands.start(self._ctx, self._tasks)
        loop = asyncio.get_running_loop()
        self._inbox = LoopInbox(loop, self.relay.on_batch, self.relay.on_malformed)
        self.streams.attach(self._inbox)
        self.streams.start()
        if self.metrics is not None:
            self.metrics.start(self._tasks)
        log.debug("bridge link: %d bridge(s), metrics from %s", len(self.registry.bridges),
                  self.settings.learner_metrics_endpoint)  # fmt: skip

    async def stop(self) -> None:
        if self._inbox is not None:
            self.streams.detach(self._inbox)
            self._inbox = None
        await asyncio.to_thread(self.streams.stop)
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)
        await self._tasks.cancel_all()
        self.commands.stop()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None

    # ------------------------------------------------------------------- queries
    def robots(self) -> list[str]:
        """Robot ids seen so far, in bridge order."""
        return self.registry.robots()

    def default_robot(self) -> str | None:
        return self.registry.default_robot()

    def statuses(self) -> list[tuple[int, str, BridgeStatus | None, float | None]]:
        """(index, pub endpoint, latest status, its age in s) for every configured bridge."""
        return self.registry.statuses()

    def status(self, robot_id: str | None) -> BridgeStatus | None:
        return self.registry.status(robot_id)

    async def status_after(
        self, robot_id: str | None, since_mono: float, timeout_s: float = 1.0
    ) -> BridgeStatus | None:
        """The first status of ``robot_id`` received after ``since_mono`` (monotonic s): one
        that reflects a command answered at that time. The latest one after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            bridge = self.registry.find(robot_id)
            if bridge is not None and bridge.status and bridge.status_rx_mono > since_mono:
                return bridge.status
            await asyncio.sleep(STATUS_POLL_S)
        return self.status(robot_id)

    def resolve_robot(self, robot_id: str | None) -> str:
        """The robot id a request means (the first bridge's when not given)."""
        return self.registry.resolve_robot(robot_id)

    def bridge_key(self, robot_id: str | None, *, index: int | None = None) -> str:
        """A stable key of the bridge serving ``robot_id`` (or bridge ``index``), for leases."""
        return self.registry.bridge_key(robot_id, index=index)

    # ------------------------------------------------------------------ commands
    async def command(
        self, body: CommandBody, robot_id: str | None = None, timeout_s: float | None = None
    ) -> CommandReply:
        """Send one command and await the bridge's reply; raise BridgeError on failure."""
        return await self.commands.command(body, robot_id, timeout_s)

    async def command_all(
        self, make_body: Callable[[], CommandBody]
    ) -> list[tuple[str, CommandReply | BridgeError]]:
        """Send a command to every bridge at once; (robot or endpoint, reply or error) each."""
        return await self.commands.command_all(make_body)

    def send_action(self, action: TeleopAction, robot_id: str | None = None) -> None:
        """Queue a teleop action keep-latest (an unsent older one is replaced)."""
        self.commands.send_action(action, robot_id)
