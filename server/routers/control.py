"""``/ws/control``: the operator's input and command channel (protocol: tandem.messages.control).

One connection is one client. ``claim`` asks for the robot's control lease
(operators only; one client at a time); while holding it, device input
(``gamepad``, ``xr``, ``keyboard``, ``xr_event``) is mapped by
``teleop.InputMapper`` and the action goes keep-latest to the bridge as a
``TeleopAction`` stamped with the operator's input time on the server's
monotonic clock (the browser's ``t_input`` plus a clock-offset estimate per
connection, ``tandem.clock``), so that input held up by a frozen server is
refused as stale by the bridge; the first neutral input after an action (deadman
released) goes as ``action=None`` and clears the bridge's pending action;
``command`` goes to the bridge and its reply comes back as an
``ack``. ``estop`` works for every logged-in user without the lease;
``clear_estop`` needs an operator (no lease). The lease expires after
``teleop.lease_timeout_s`` without input and is released when the socket
closes. ``ping`` is answered with ``pong`` at once. Input that would move the
robot while its last reported mode is not teleop or intervention is not
forwarded (the bridge would refuse it): the client gets an ``error`` saying why,
at most once a second.

Query parameters: ``robot`` (robot id; default: the first bridge), ``token``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from server.auth import WS_FORBIDDEN
from server.bridge_link import BridgeError
from server.control.client import (
    ControlClient,
    ControlRegistry,
    claim,
    lease_message,
    registry_of,
    release,
    track_session,
)
from server.control.commands import handle_command
from server.control.inputs import handle_input
from server.deps import get_state, websocket_user
from tandem.messages.control import (
    Claim,
    ClientPing,
    CommandRequest,
    ControlProtocolError,
    ErrorReply,
    GamepadInput,
    KeyboardInput,
    Pong,
    Release,
    XREvent,
    XRInput,
    parse_client_message,
)
from teleop import ActionLimits, InputMapper

log = logging.getLogger(__name__)

router = APIRouter(tags=["control"])

WATCHDOG_PERIOD_S = 0.1


@router.websocket("/ws/control")
async def control_socket(
    ws: WebSocket,
    robot: Annotated[str | None, Query(max_length=128)] = None,
) -> None:
    state = get_state(ws)
    user = await websocket_user(ws, state)
    if user is None:
        return
    try:
        key = state.link.bridge_key(robot)
    except BridgeError as exc:
        await ws.close(WS_FORBIDDEN, str(exc)[:120])
        return
    bridge = state.settings.bridge
    limits = ActionLimits(bridge.max_translation_m, bridge.max_rotation_rad)
    client = ControlClient(ws, state, user, robot, key, InputMapper(state.settings.teleop, limits))
    registry = registry_of(state)
    registry.clients[client.id] = client
    log.info("control client %s connected: %s (%s)", client.id, user.name, user.role)
    writer = asyncio.ensure_future(_writer(client))
    watchdog = asyncio.ensure_future(_watchdog(client, registry))
    client.send(lease_message(client))
    try:
        await _reader(client, registry)
    finally:
        for task in (watchdog, writer, *client.tasks):
            task.cancel()
        registry.clients.pop(client.id, None)
        track_session(client, False)
        client.mapper.release()
        if state.leases.release_all(client.id):
            log.info("control lease of %s released: socket closed", user.name)
            registry.broadcast_lease(state, key)
        with contextlib.suppress(Exception):
            await ws.close()


async def _reader(client: ControlClient, registry: ControlRegistry) -> None:
    while True:
        try:
            message = await client.ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") if message.get("text") is not None else message.get("bytes")
        try:
            msg = parse_client_message(raw or "")
        except ControlProtocolError as exc:
            client.send(ErrorReply(message=exc.message, ref_seq=exc.ref_seq))
            continue
        _dispatch(client, registry, msg)


def _dispatch(client: ControlClient, registry: ControlRegistry, msg: BaseModel) -> None:
    if isinstance(msg, ClientPing):
        client.send(Pong(t_client=msg.t_client, t_server=time.time() * 1000.0))
    elif isinstance(msg, Claim):
        claim(client, registry, msg)
    elif isinstance(msg, Release):
        release(client, registry)
    elif isinstance(msg, CommandRequest):
        handle_command(client, msg)
    elif isinstance(msg, GamepadInput | KeyboardInput | XRInput | XREvent):
        handle_input(client, msg)


async def _writer(client: ControlClient) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            text = await client.outbox.get()
            await client.ws.send_text(text)


async def _watchdog(client: ControlClient, registry: ControlRegistry) -> None:
    """Notice a lease that expired for lack of input: stop mapping and tell everyone."""
    while True:
        await asyncio.sleep(WATCHDOG_PERIOD_S)
        if client.had_lease and not client.state.leases.holds(client.key, client.id):
            log.info("control lease of %s expired: no input from %s", client.key, client.user.name)
            client.mapper.release()
            registry.broadcast_lease(client.state, client.key)
