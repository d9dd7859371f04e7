"""The scripted operator's connection to the server, as a browser page makes it.

Two WebSockets with the operator's bearer token: ``/ws/control`` (claim, pad
snapshots, commands answered by ``ack``) and ``/ws/telemetry`` (robot state,
per-step ``rollout`` messages, episode start and summary). A few REST calls go
over plain HTTP. Messages are built and checked with the protocol models in
``tandem.messages.control``; a malformed server message is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tandem.messages.control import (
    Ack,
    Claim,
    CommandName,
    CommandRequest,
    ErrorReply,
    GamepadButton,
    GamepadInput,
    Lease,
    server_adapter,
)
from teleop.emulated_pad import PadSnapshot

log = logging.getLogger(__name__)

TELEMETRY_QUEUE = 4096
PAD_ID = "Tandem scripted operator (STANDARD GAMEPAD)"


def _now_ms() -> float:
    """The browser's clock: epoch milliseconds."""
    return time.time() * 1000.0


class LinkError(RuntimeError):
    """The server refused or dropped the operator; the text says what and why."""


class ServerLink:
    """Control and telemetry sockets of one operator on one robot; use ``async with``."""

    def __init__(self, base_url: str, token: str, robot: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.robot = robot
        self._token = token
        self._seq = itertools.count(1)
        self._acks: dict[int, asyncio.Future[Ack]] = {}
        self._lease: asyncio.Queue[Lease] = asyncio.Queue()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(TELEMETRY_QUEUE)
        self.errors: list[str] = []
        self._control: ClientConnection | None = None
        self._telemetry: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ServerLink:
        query = {"robot": self.robot} if self.robot else {}
        self._telemetry = await self._connect("/ws/telemetry", {})
        self._control = await self._connect("/ws/control", query)
        self._tasks = [
            asyncio.ensure_future(self._read_control(self._control)),
            asyncio.ensure_future(self._read_telemetry(self._telemetry)),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for ws in (self._control, self._telemetry):
            if ws is not None:
                await ws.close()

    async def _connect(self, path: str, query: dict[str, str]) -> ClientConnection:
        base = urllib.parse.urlsplit(self.base_url)
        scheme = "wss" if base.scheme == "https" else "ws"
        parts = (scheme, base.netloc, base.path + path, urllib.parse.urlencode(query), "")
        url = urllib.parse.urlunsplit(parts)
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            return await connect(url, additional_headers=headers, max_size=2**22)
        except (OSError, InvalidStatus) as exc:
            raise LinkError(f"cannot open {url}: {exc}") from None

    # ------------------------------------------------------------------ sending
    async def send(self, msg: BaseModel) -> int:
        """Send one control-protocol message with the next seq; returns the seq."""
        assert self._control is not None, "use 'async with ServerLink(...)'"
        seq = next(self._seq)
        try:
            await self._control.send(msg.model_copy(update={"seq": seq}).model_dump_json())
        except ConnectionClosed as exc:
            raise LinkError(f"the control socket closed: {exc}") from None
        return seq

    async def send_pad(self, snap: PadSnapshot) -> None:
        buttons = [
            GamepadButton(pressed=p, value=v)
            for p, v in zip(snap.pressed, snap.values, strict=True)
        ]
        msg = GamepadInput(axes=list(snap.axes), buttons=buttons, id=PAD_ID, t_input=_now_ms())
        await self.send(msg)

    async def command(
        self,
        name: CommandName,
        reason: str | None = None,
        timeout: float = 10.0,
        *,
        episodes: int | None = None,
    ) -> Ack:
        """Send a command and wait for its ``ack`` (ok or refused with the bridge's reason).

        ``episodes``: the size of the batch, for ``start_eval`` only.
        """
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        seq = next(self._seq)
        self._acks[seq] = future
        assert self._control is not None
        msg = CommandRequest(seq=seq, name=name, reason=reason, episodes=episodes)
        await self._control.send(msg.model_dump_json())
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise LinkError(f"no answer to command {name!r} within {timeout} s") from None
        finally:
            self._acks.pop(seq, None)

    async def claim(self, operator: str, timeout: float = 10.0) -> None:
        """Take the control lease; raises ``LinkError`` with the server's reason if refused."""
        await self.send(Claim(operator=operator))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                lease = await asyncio.wait_for(self._lease.get(), left)
            except TimeoutError:
                break
            if lease.you_hold:
                return
            if lease.holder is not None:
                raise LinkError(f"the robot is controlled by {lease.holder!r}")
        raise LinkError(f"control lease not granted within {timeout} s: {self.errors[-1:]}")

    # ------------------------------------------------------------------ receiving
    async def _read_control(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                try:
                    msg = server_adapter.validate_json(text)
                except ValidationError as exc:
                    log.warning("malformed control message from the server dropped: %s", exc)
                    continue
                self._on_control(msg)
        log.warning("the control socket closed: %s", ws.close_reason or ws.close_code)

    def _on_control(self, msg: BaseModel) -> None:
        if isinstance(msg, Ack):
            future = self._acks.get(msg.ref_seq)
            if future is not None and not future.done():
                future.set_result(msg)
        elif isinstance(msg, Lease):
            self._lease.put_nowait(msg)
        elif isinstance(msg, ErrorReply):
            log.warning("server: %s", msg.message)
            self.errors.append(msg.message)
            del self.errors[:-50]

    async def _read_telemetry(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                try:
                    event = json.loads(text)
                except ValueError:
                    log.warning("malformed telemetry message dropped")
                    continue
                if not isinstance(event, dict):
                    continue
                if self.events.full():  # keep the newest; the operator only looks ahead
                    self.events.get_nowait()
                self.events.put_nowait(event)
        reason = ws.close_reason or f"code {ws.close_code}"
        log.info("the telemetry socket closed: %s", reason)
        if self.events.full():
            self.events.get_nowait()
        self.events.put_nowait({"type": "closed", "reason": reason})

    async def next_event(self, timeout: float) -> dict[str, Any]:
        try:
            event = await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            raise LinkError(f"no telemetry from the server for {timeout} s") from None
        if event.get("type") == "closed":
            raise LinkError(f"the server closed the telemetry socket: {event.get('reason')}")
        return event

    # ------------------------------------------------------------------ HTTP
    async def http(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One REST call with the operator's token; raises ``LinkError`` on an HTTP error."""
        return await asyncio.to_thread(self._http, method, path, body)

    def _http(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        return request_json(self.base_url, method, path, body, token=self._token)


def log_in(base_url: str, name: str, password: str) -> str:
    """A session token from ``POST /api/auth/login``; ``LinkError`` when refused."""
    reply = request_json(
        base_url.rstrip("/"), "POST", "/api/auth/login", {"name": name, "password": password}
    )
    if not isinstance(reply, dict) or not isinstance(reply.get("token"), str):
        raise LinkError(f"POST /api/auth/login: no token in the reply {str(reply)[:200]!r}")
    return reply["token"]


def request_json(
    base_url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    *,
    token: str | None = None,
) -> Any:
    """One JSON REST call (blocking); raises ``LinkError`` on an HTTP or network error."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise LinkError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
    except OSError as exc:
        raise LinkError(f"{method} {path}: {exc}") from None
    return json.loads(raw) if raw else None
