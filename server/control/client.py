"""One ``/ws/control`` connection, the registry of all of them, and the control lease.

A lease change is broadcast to every client of that bridge; an operating session
(operator, robot, start and end in the database) spans each lease held.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field

from fastapi import WebSocket
from pydantic import BaseModel

from server.auth import User
from server.bridge_link import BridgeError
from server.deps import AppState
from tandem.clock import ClockOffset
from tandem.messages import TeleopAction
from tandem.messages.control import Claim, ErrorReply, Lease
from teleop import InputMapper

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 256
NOT_HOLDING_ERROR_EVERY_S = 1.0


@dataclass
class ControlClient:
    """One /ws/control connection."""

    ws: WebSocket
    state: AppState
    user: User
    robot: str | None
    key: str
    mapper: InputMapper
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    outbox: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    seq: itertools.count[int] = field(default_factory=itertools.count)
    had_lease: bool = False
    session_id: int | None = None
    last_not_holding_error: float = 0.0
    last_input_refused: float = 0.0
    clock: ClockOffset = field(default_factory=ClockOffset)  # browser ms / 1000 -> monotonic
    driving: bool = False  # the last action sent to the bridge moved the robot
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def send(self, msg: BaseModel) -> None:
        """Queue a server message (its seq is stamped here); drops it if the client stalls."""
        text = msg.model_copy(update={"seq": next(self.seq)}).model_dump_json()
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("control client %s is not reading; message dropped", self.id)


class ControlRegistry:
    """Control clients by bridge key, to tell everyone when a lease changes hands."""

    def __init__(self) -> None:
        self.clients: dict[str, ControlClient] = {}

    def broadcast_lease(self, state: AppState, key: str) -> None:
        holder = state.leases.holder(key)
        remaining = state.leases.remaining_s(key)
        for client in self.clients.values():
            if client.key == key:
                you = holder is not None and holder.client_id == client.id
                client.had_lease = you
                track_session(client, you)
                client.send(
                    Lease(
                        holder=holder.operator if holder else None,
                        you_hold=you,
                        expires_in_s=remaining,
                    )
                )


def track_session(client: ControlClient, holds: bool) -> None:
    """An operating session (operator, robot, start/end in the database) spans a lease.

    Claims and releases are rare, so the short store calls run inline.
    """
    store = client.state.store.activity
    try:
        if holds and client.session_id is None:
            status = client.state.link.status(client.robot)
            robot_id = status.robot_id if status else None
            client.session_id = store.open_session(client.user.id, robot_id)
        elif not holds and client.session_id is not None:
            session_id, client.session_id = client.session_id, None
            store.close_session(session_id)
    except Exception:  # bookkeeping must never break the control path
        log.exception("could not record the operating session of %s", client.user.name)


def registry_of(state: AppState) -> ControlRegistry:
    registry = state.extra.get("control_registry")
    if not isinstance(registry, ControlRegistry):
        registry = state.extra["control_registry"] = ControlRegistry()
    return registry


def lease_message(client: ControlClient) -> Lease:
    holder = client.state.leases.holder(client.key)
    return Lease(
        holder=holder.operator if holder else None,
        you_hold=holder is not None and holder.client_id == client.id,
        expires_in_s=client.state.leases.remaining_s(client.key),
    )


def claim(client: ControlClient, registry: ControlRegistry, msg: Claim) -> None:
    if not client.user.is_operator:
        client.send(ErrorReply(message="viewers cannot claim control", ref_seq=msg.seq))
        return
    result = client.state.leases.claim(client.key, client.id, client.user.name)
    if not result.granted:
        client.send(ErrorReply(message=result.reason, ref_seq=msg.seq))
        client.send(lease_message(client))
        return
    if not client.had_lease:
        log.info("control lease of %s granted to %s", client.key, client.user.name)
        client.mapper.reset()
    registry.broadcast_lease(client.state, client.key)


def release(client: ControlClient, registry: ControlRegistry) -> None:
    client.mapper.release()
    if client.driving:
        forward(client, None, time.monotonic(), 0)
    if client.state.leases.release(client.key, client.id):
        log.info("control lease of %s released by %s", client.key, client.user.name)
        registry.broadcast_lease(client.state, client.key)
    else:
        client.send(lease_message(client))


def not_holding(client: ControlClient, seq: int) -> None:
    now = time.monotonic()
    if now - client.last_not_holding_error >= NOT_HOLDING_ERROR_EVERY_S:
        client.last_not_holding_error = now
        client.send(ErrorReply(message="you do not hold the control lease", ref_seq=seq))


def forward(client: ControlClient, act: list[float] | None, t_input: float, seq: int) -> None:
    """Send an action (None: neutral, clears the bridge's pending one) keep-latest."""
    client.driving = act is not None
    action = TeleopAction(action=act, t_input=t_input, operator=client.user.name)
    try:
        client.state.link.send_action(action, client.robot)
    except BridgeError as exc:
        client.send(ErrorReply(message=str(exc), ref_seq=seq))
