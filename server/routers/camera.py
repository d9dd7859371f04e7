"""``/ws/camera?cam=NAME[&robot=ID]``: live camera frames as binary WebSocket messages.

Each message is a 24-byte little-endian header then the JPEG bytes:
``uint32 frame_seq | uint32 flags | float64 t_capture_ms | float64 t_send_ms``
(times are Unix epoch milliseconds; capture time is the bridge's, sending
time the server's). The newest frame wins per client: a slow client skips
frames and never makes a queue grow. Without ``robot`` the first bridge's
camera is streamed. Messages from the client (e.g. ``frame_ack``) are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
import time
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket
from starlette.websockets import WebSocketDisconnect

from server.auth import WS_FORBIDDEN
from server.deps import get_state, websocket_user
from server.fanout import Mailbox
from server.routers.telemetry import drain_until_closed
from server.telemetry_relay import CameraPacket

log = logging.getLogger(__name__)

router = APIRouter(tags=["camera"])

HEADER = struct.Struct("<IIdd")
_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def frame_message(packet: CameraPacket, flags: int = 0) -> bytes:
    """Header + JPEG for one frame, stamped with the current time as the send time."""
    header = HEADER.pack(
        packet.frame_seq & 0xFFFFFFFF, flags, packet.t_capture_wall * 1000.0, time.time() * 1000.0
    )
    return header + packet.jpeg


@router.websocket("/ws/camera")
async def camera_socket(
    ws: WebSocket,
    cam: Annotated[str, Query(max_length=64)] = "",
    robot: Annotated[str | None, Query(max_length=128)] = None,
) -> None:
    state = get_state(ws)
    user = await websocket_user(ws, state)
    if user is None:
        return
    robot = robot or ""
    if not _CAMERA_NAME.match(cam) or (robot and not _CAMERA_NAME.match(robot)):
        await ws.close(WS_FORBIDDEN, "cam (and robot) must be names of 1-64 letters, digits, _.-")
        return
    hub = state.hubs.camera(robot, cam)
    if hub is None:
        await ws.close(WS_FORBIDDEN, f"no camera {cam!r} has sent a frame, and too many unknown "
                       "camera names are being watched")  # fmt: skip
        return
    box_id, box = hub.subscribe()
    sender = asyncio.ensure_future(_send_loop(ws, box))
    try:
        await drain_until_closed(ws)
    finally:
        hub.unsubscribe(box_id)
        state.hubs.release(robot, cam)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def _send_loop(ws: WebSocket, box: Mailbox) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while batch := await box.next_batch():
            for packet in batch:
                await ws.send_bytes(frame_message(packet))
