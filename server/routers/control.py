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
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from server.auth import WS_FORBIDDEN, User
from server.bridge_link import BridgeError
from server.deps import AppState, get_state, websocket_user
from tandem.clock import ClockOffset
from tandem.messages import (
    ClearEStop,
    CommandBody,
    ControlMode,
    EndEpisode,
    EStop,
    HandBack,
    Outcome,
    ResetDone,
    StartDemo,
    StartEval,
    StartRollout,
    StopEval,
    TakeOver,
    TeleopAction,
)
from tandem.messages.control import (
    Ack,
    Claim,
    ClientPing,
    CommandRequest,
    ControlProtocolError,
    ErrorReply,
    GamepadInput,
    KeyboardInput,
    Lease,
    Pong,
    Release,
    XREvent,
    XRInput,
    parse_client_message,
)
from teleop import ActionLimits, EEPose, InputMapper, MappedInput

log = logging.getLogger(__name__)

router = APIRouter(tags=["control"])

OUTBOX_LIMIT = 256
WATCHDOG_PERIOD_S = 0.1
NOT_HOLDING_ERROR_EVERY_S = 1.0
INPUT_REFUSED_EVERY_S = 1.0
HUMAN_DRIVEN = {ControlMode.TELEOP, ControlMode.INTERVENTION}
# What to do about input refused in each mode, for the operator.
MODE_HINTS = {
    ControlMode.IDLE: "press Start demo to drive",
    ControlMode.ROLLOUT: "hold Take over to drive",
    ControlMode.AWAIT_RESET: "label the episode, then press Reset done",
    ControlMode.ESTOP: "clear the e-stop first",
}
NO_LEASE_COMMANDS = {"estop", "clear_estop"}


def command_body(
    name: str, operator: str, reason: str | None, episodes: int | None = None
) -> CommandBody:
    """The bridge command for a browser command name (``episodes``: start_eval's batch size)."""
    if name in ("success", "failure", "discard"):
        return EndEpisode(label=Outcome(name), operator=operator, reason=reason)
    if name == "start_eval":
        if episodes is None:
            raise ValueError("start_eval needs the number of episodes")
        return StartEval(episodes=episodes, operator=operator, reason=reason)
    simple: dict[
        str,
        type[
            StartDemo
            | StartRollout
            | StopEval
            | TakeOver
            | HandBack
            | ResetDone
            | EStop
            | ClearEStop
        ],
    ] = {
        "start_demo": StartDemo,
        "start_rollout": StartRollout,
        "stop_eval": StopEval,
        "take_over": TakeOver,
        "hand_back": HandBack,
        "reset_done": ResetDone,
        "estop": EStop,
        "clear_estop": ClearEStop,
    }
    return simple[name](operator=operator, reason=reason)


@dataclass
class _Client:
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


class _Registry:
    """Control clients by bridge key, to tell everyone when a lease changes hands."""

    def __init__(self) -> None:
        self.clients: dict[str, _Client] = {}

    def broadcast_lease(self, state: AppState, key: str) -> None:
        holder = state.leases.holder(key)
        remaining = state.leases.remaining_s(key)
        for client in self.clients.values():
            if client.key == key:
                you = holder is not None and holder.client_id == client.id
                client.had_lease = you
                _track_session(client, you)
                client.send(
                    Lease(
                        holder=holder.operator if holder else None,
                        you_hold=you,
                        expires_in_s=remaining,
                    )
                )


def _track_session(client: _Client, holds: bool) -> None:
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


def _registry(state: AppState) -> _Registry:
    registry = state.extra.get("control_registry")
    if not isinstance(registry, _Registry):
        registry = state.extra["control_registry"] = _Registry()
    return registry


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
    client = _Client(ws, state, user, robot, key, InputMapper(state.settings.teleop, limits))
    registry = _registry(state)
    registry.clients[client.id] = client
    log.info("control client %s connected: %s (%s)", client.id, user.name, user.role)
    writer = asyncio.ensure_future(_writer(client))
    watchdog = asyncio.ensure_future(_watchdog(client, registry))
    client.send(_lease_message(client))
    try:
        await _reader(client, registry)
    finally:
        for task in (watchdog, writer, *client.tasks):
            task.cancel()
        registry.clients.pop(client.id, None)
        _track_session(client, False)
        client.mapper.release()
        if state.leases.release_all(client.id):
            log.info("control lease of %s released: socket closed", user.name)
            registry.broadcast_lease(state, key)
        with contextlib.suppress(Exception):
            await ws.close()


async def _reader(client: _Client, registry: _Registry) -> None:
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


def _dispatch(client: _Client, registry: _Registry, msg: BaseModel) -> None:
    if isinstance(msg, ClientPing):
        client.send(Pong(t_client=msg.t_client, t_server=time.time() * 1000.0))
    elif isinstance(msg, Claim):
        _claim(client, registry, msg)
    elif isinstance(msg, Release):
        _release(client, registry)
    elif isinstance(msg, CommandRequest):
        _command(client, msg)
    elif isinstance(msg, GamepadInput | KeyboardInput | XRInput | XREvent):
        _input(client, msg)


def _lease_message(client: _Client) -> Lease:
    holder = client.state.leases.holder(client.key)
    return Lease(
        holder=holder.operator if holder else None,
        you_hold=holder is not None and holder.client_id == client.id,
        expires_in_s=client.state.leases.remaining_s(client.key),
    )


def _claim(client: _Client, registry: _Registry, msg: Claim) -> None:
    if not client.user.is_operator:
        client.send(ErrorReply(message="viewers cannot claim control", ref_seq=msg.seq))
        return
    result = client.state.leases.claim(client.key, client.id, client.user.name)
    if not result.granted:
        client.send(ErrorReply(message=result.reason, ref_seq=msg.seq))
        client.send(_lease_message(client))
        return
    if not client.had_lease:
        log.info("control lease of %s granted to %s", client.key, client.user.name)
        client.mapper.reset()
    registry.broadcast_lease(client.state, client.key)


def _release(client: _Client, registry: _Registry) -> None:
    client.mapper.release()
    if client.driving:
        _forward(client, None, time.monotonic(), 0)
    if client.state.leases.release(client.key, client.id):
        log.info("control lease of %s released by %s", client.key, client.user.name)
        registry.broadcast_lease(client.state, client.key)
    else:
        client.send(_lease_message(client))


def _not_holding(client: _Client, seq: int) -> None:
    now = time.monotonic()
    if now - client.last_not_holding_error >= NOT_HOLDING_ERROR_EVERY_S:
        client.last_not_holding_error = now
        client.send(ErrorReply(message="you do not hold the control lease", ref_seq=seq))


def _input(client: _Client, msg: GamepadInput | KeyboardInput | XRInput | XREvent) -> None:
    leases = client.state.leases
    if not leases.touch(client.key, client.id):
        if isinstance(msg, XREvent):
            client.mapper.on_xr_event(msg)  # safety releases apply even without the lease
        _not_holding(client, msg.seq)
        return
    mapped = _map(client, msg)
    t_input = client.clock.local(msg.t_input / 1000.0, time.monotonic())
    if mapped.action is None and not client.driving:
        return
    if mapped.action is not None and _refuse_input(client, msg.seq):
        return
    _forward(client, mapped.action, t_input, msg.seq)


def _refuse_input(client: _Client, seq: int) -> bool:
    """True when the robot's last reported mode refuses teleop input; tells the client why
    (at most once per ``INPUT_REFUSED_EVERY_S``). Without a status the bridge decides."""
    status = client.state.link.status(client.robot)
    if status is None or status.mode in HUMAN_DRIVEN:
        return False
    now = time.monotonic()
    if now - client.last_input_refused >= INPUT_REFUSED_EVERY_S:
        client.last_input_refused = now
        mode = status.mode
        hint = MODE_HINTS.get(mode, "the robot only moves in teleop or intervention")
        message = f"input refused: the robot is in {mode.value.replace('_', ' ')}; {hint}"
        client.send(ErrorReply(message=message, ref_seq=seq))
    return True


def _forward(client: _Client, act: list[float] | None, t_input: float, seq: int) -> None:
    """Send an action (None: neutral, clears the bridge's pending one) keep-latest."""
    client.driving = act is not None
    action = TeleopAction(action=act, t_input=t_input, operator=client.user.name)
    try:
        client.state.link.send_action(action, client.robot)
    except BridgeError as exc:
        client.send(ErrorReply(message=str(exc), ref_seq=seq))


def _map(client: _Client, msg: GamepadInput | KeyboardInput | XRInput | XREvent) -> MappedInput:
    mapper = client.mapper
    if isinstance(msg, GamepadInput):
        return mapper.on_gamepad(msg)
    if isinstance(msg, KeyboardInput):
        return mapper.on_keyboard(msg)
    if isinstance(msg, XREvent):
        return mapper.on_xr_event(msg)
    return mapper.on_xr(msg, _ee_pose(client))


def _ee_pose(client: _Client) -> EEPose | None:
    """The measured end-effector position from the bridge's latest status (no orientation)."""
    status = client.state.link.status(client.robot)
    if status is None or status.ee_pos is None or len(status.ee_pos) != 3:
        return None
    x, y, z = status.ee_pos
    try:
        return EEPose((x, y, z))
    except ValueError:
        return None


def _command(client: _Client, msg: CommandRequest) -> None:
    if msg.name not in NO_LEASE_COMMANDS and not client.state.leases.touch(client.key, client.id):
        client.send(_refused(msg, "claim control first: you do not hold the control lease"))
        return
    if msg.name == "clear_estop" and not client.user.is_operator:
        client.send(_refused(msg, "viewers cannot clear the e-stop"))
        return
    if msg.name == "estop":
        log.warning("E-STOP requested by %s over /ws/control", client.user.name)
    task = asyncio.ensure_future(_relay(client, msg))
    client.tasks.add(task)
    task.add_done_callback(client.tasks.discard)


def _refused(msg: CommandRequest, reason: str) -> Ack:
    return Ack(ref_seq=msg.seq, name=msg.name, ok=False, reason=reason)


async def _relay(client: _Client, msg: CommandRequest) -> None:
    body = command_body(msg.name, client.user.name, msg.reason, msg.episodes)
    try:
        reply = await client.state.link.command(body, client.robot)
    except BridgeError as exc:
        client.send(_refused(msg, str(exc)))
        return
    client.send(
        Ack(ref_seq=msg.seq, name=msg.name, ok=reply.ok, reason=reply.reason, mode=reply.mode)
    )


async def _writer(client: _Client) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            text = await client.outbox.get()
            await client.ws.send_text(text)


async def _watchdog(client: _Client, registry: _Registry) -> None:
    """Notice a lease that expired for lack of input: stop mapping and tell everyone."""
    while True:
        await asyncio.sleep(WATCHDOG_PERIOD_S)
        if client.had_lease and not client.state.leases.holds(client.key, client.id):
            log.info("control lease of %s expired: no input from %s", client.key, client.user.name)
            client.mapper.release()
            registry.broadcast_lease(client.state, client.key)
