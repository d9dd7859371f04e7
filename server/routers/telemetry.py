"""``/ws/telemetry``: robot state, learner metrics, episode summaries and the rollout stream.

Server -> client JSON text messages (``type``, one model each in
``tandem.messages.telemetry``): ``hello`` (once), ``state``
(BridgeStatus of one robot, keep-latest, ~10 Hz), ``metrics`` (batched learner
metrics rows, 1-5 Hz), ``rollout`` (one per control step: action source,
Q values), ``episode_start``, ``episode_summary``, ``episode_label``. A slow
client gets the newest ``state`` per robot and at most the last 256 other
messages; nothing queues without bound. What the client sends is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from server.deps import get_state, websocket_user
from server.fanout import Mailbox
from tandem.messages import Hello, RobotState

log = logging.getLogger(__name__)

router = APIRouter(tags=["telemetry"])


@router.websocket("/ws/telemetry")
async def telemetry_socket(ws: WebSocket) -> None:
    state = get_state(ws)
    user = await websocket_user(ws, state)
    if user is None:
        return
    box_id, box = state.hubs.telemetry.subscribe()
    hello = Hello(
        server_time=time.time(), user=user.name, role=user.role, robots=state.link.robots()
    )
    box.put_event(hello.to_json())
    for _, _, status, _ in state.link.statuses():
        if status is not None:
            box.put_latest(("state", status.robot_id), RobotState.of(status).to_json())
    sender = asyncio.ensure_future(_send_loop(ws, box))
    try:
        await drain_until_closed(ws)
    finally:
        state.hubs.telemetry.unsubscribe(box_id)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _send_loop(ws: WebSocket, box: Mailbox) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while batch := await box.next_batch():
            for text in batch:
                await ws.send_text(text)


async def drain_until_closed(ws: WebSocket) -> None:
    """Read and ignore client messages until the socket closes."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
