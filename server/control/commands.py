"""Commands from ``/ws/control``: relayed to the bridge, answered with an ``ack``.

``estop`` works for every logged-in user without the lease; ``clear_estop``
needs an operator (no lease); every other command needs the lease.
"""

from __future__ import annotations

import asyncio
import logging

from server.bridge_link import BridgeError
from server.control.client import ControlClient
from tandem.messages import (
    ClearEStop,
    CommandBody,
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
)
from tandem.messages.control import Ack, CommandRequest

log = logging.getLogger(__name__)

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


def handle_command(client: ControlClient, msg: CommandRequest) -> None:
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


async def _relay(client: ControlClient, msg: CommandRequest) -> None:
    body = command_body(msg.name, client.user.name, msg.reason, msg.episodes)
    try:
        reply = await client.state.link.command(body, client.robot)
    except BridgeError as exc:
        client.send(_refused(msg, str(exc)))
        return
    client.send(
        Ack(ref_seq=msg.seq, name=msg.name, ok=reply.ok, reason=reply.reason, mode=reply.mode)
    )
