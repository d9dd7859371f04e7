"""Commands to the bridges: one DEALER per bridge, connected to its command ROUTER.

``command`` sends a ``tandem.messages.Command`` and awaits the ``CommandReply``
whose ``command_seq`` matches, with a timeout. Teleop actions go through a
keep-latest slot per bridge: only the newest unsent action is ever sent. Runs
as asyncio tasks on the server's loop; a malformed reply is counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import zmq
import zmq.asyncio

from server.bridge_registry import BridgeError, BridgeInfo, BridgeRegistry, LinkStats, TaskSet
from tandem import security, wire
from tandem.messages import Command, CommandBody, CommandReply, Sequencer, TeleopAction

log = logging.getLogger(__name__)


@dataclass
class _Channel:
    """The command side of one bridge."""

    bridge: BridgeInfo
    dealer: zmq.asyncio.Socket
    pending: dict[int, asyncio.Future[CommandReply]] = field(default_factory=dict)
    action: Command | None = None
    action_ready: asyncio.Event = field(default_factory=asyncio.Event)
    actions_sent: int = 0
    actions_replaced: int = 0


class CommandLink:
    """Commands and keep-latest teleop actions to every configured bridge."""

    def __init__(self, registry: BridgeRegistry, stats: LinkStats, timeout_s: float) -> None:
        self.registry = registry
        self.stats = stats
        self.timeout_s = timeout_s
        self._seq = Sequencer()
        self._channels: dict[int, _Channel] = {}

    def start(self, ctx: zmq.asyncio.Context, tasks: TaskSet) -> None:
        """Connect the DEALERs and start the reply and action loops (on the running loop)."""
        for bridge in self.registry.bridges:
            channel = _Channel(bridge, _dealer(ctx, bridge.cmd_endpoint))
            self._channels[bridge.index] = channel
            tasks.spawn(partial(self._reply_loop, channel), f"replies[{bridge.index}]")
            tasks.spawn(partial(self._action_loop, channel), f"actions[{bridge.index}]")

    def stop(self) -> None:
        """Fail every command still awaiting its reply (the sockets die with the context)."""
        for channel in self._channels.values():
            for fut in channel.pending.values():
                if not fut.done():
                    fut.set_exception(BridgeError("server is shutting down"))
            channel.pending.clear()
        self._channels.clear()

    def _channel(self, robot_id: str | None) -> _Channel:
        bridge = self.registry.find(robot_id)
        channel = self._channels.get(bridge.index) if bridge else None
        if channel is None:
            raise BridgeError(self.registry.unknown(robot_id))
        return channel

    async def command(
        self, body: CommandBody, robot_id: str | None = None, timeout_s: float | None = None
    ) -> CommandReply:
        """Send one command and await the bridge's reply; raise BridgeError on failure."""
        channel = self._channel(robot_id)
        bridge = channel.bridge
        cmd = Command(seq=self._seq.next(Command.TOPIC), robot_id=bridge.robot_id, body=body)
        fut: asyncio.Future[CommandReply] = asyncio.get_running_loop().create_future()
        channel.pending[cmd.seq] = fut
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + timeout
        try:
            # IMMEDIATE: the send waits for a live connection instead of queueing for a
            # bridge that is not there; both waits share one deadline.
            await asyncio.wait_for(channel.dealer.send_multipart(wire.encode(cmd)), timeout)
        except TimeoutError:
            channel.pending.pop(cmd.seq, None)
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
            channel.pending.pop(cmd.seq, None)

    async def command_all(
        self, make_body: Callable[[], CommandBody]
    ) -> list[tuple[str, CommandReply | BridgeError]]:
        """Send a command to every bridge at once; (robot or endpoint, reply or error) each."""

        async def one(bridge: BridgeInfo) -> tuple[str, CommandReply | BridgeError]:
            name = bridge.robot_id or bridge.cmd_endpoint
            try:
                return name, await self._command_bridge(bridge, make_body())
            except BridgeError as exc:
                return name, exc

        return list(await asyncio.gather(*(one(b) for b in self.registry.bridges)))

    async def _command_bridge(self, bridge: BridgeInfo, body: CommandBody) -> CommandReply:
        if bridge.robot_id is not None:
            return await self.command(body, bridge.robot_id)
        if bridge.index == 0:
            return await self.command(body, None)
        raise BridgeError(f"bridge {bridge.pub_endpoint} has not published a status yet")

    def send_action(self, action: TeleopAction, robot_id: str | None = None) -> None:
        """Queue a teleop action keep-latest (an unsent older one is replaced)."""
        channel = self._channel(robot_id)
        if channel.action is not None:
            channel.actions_replaced += 1
        channel.action = Command(robot_id=channel.bridge.robot_id, body=action)
        channel.action_ready.set()

    async def _action_loop(self, channel: _Channel) -> None:
        while True:
            await channel.action_ready.wait()
            channel.action_ready.clear()
            cmd, channel.action = channel.action, None
            if cmd is None:
                continue
            cmd = cmd.model_copy(update={"seq": self._seq.next(Command.TOPIC)})
            try:
                await channel.dealer.send_multipart(wire.encode(cmd), flags=zmq.NOBLOCK)
                channel.actions_sent += 1
            except zmq.Again:
                log.debug("teleop action dropped: bridge %s not connected",
                          channel.bridge.cmd_endpoint)  # fmt: skip

    async def _reply_loop(self, channel: _Channel) -> None:
        while True:
            parts = await channel.dealer.recv_multipart()
            while parts and not parts[0]:
                parts = parts[1:]  # a ROUTER written for REQ peers may add an empty delimiter
            try:
                reply = wire.decode(parts, expect=CommandReply).msg
            except wire.WireError as exc:
                self.stats.bad_messages += 1
                log.warning("bad reply from bridge %s: %s", channel.bridge.cmd_endpoint, exc)
                continue
            assert isinstance(reply, CommandReply)
            self._on_reply(channel, reply)

    def _on_reply(self, channel: _Channel, reply: CommandReply) -> None:
        self.stats.replies += 1
        fut = channel.pending.get(reply.command_seq)
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


def _dealer(ctx: zmq.asyncio.Context, endpoint: str) -> zmq.asyncio.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, wire.SMALL_MSG_BYTES)  # replies are small
    sock.setsockopt(zmq.SNDHWM, 100)
    sock.setsockopt(zmq.IMMEDIATE, 1)  # do not queue commands for a bridge not there
    security.connect(sock, endpoint)
    return sock
