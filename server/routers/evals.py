"""Evaluation batches (``/api/evals``): start and stop one on a robot, list stored results.

A batch runs on the bridge: N evaluation episodes, the policy acting deterministically
with no human; a take-over ends an episode as a failure; the simulator resets itself
between episodes, a real robot waits for ``reset_done``. Starting or stopping one over
HTTP is refused while another operator holds the robot's control lease (they are
driving); the operator who holds it, or anyone when nobody does, may.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from server.db.schemas import EvalBatchOut
from server.deps import CurrentUser, EvalsDep, OperatorUser, StateDep
from server.responses import CONFLICT, LOGIN, NOT_FOUND, OPERATOR, UNAVAILABLE
from server.store import Conflict, NotFound
from tandem.messages import CommandBody, EvalProgress, StartEval, StopEval
from tandem.messages.commands import MAX_EVAL_EPISODES

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/evals", tags=["evals"])
COMMAND = OPERATOR | NOT_FOUND | CONFLICT | UNAVAILABLE


class StartEvalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    episodes: int = Field(ge=1, le=MAX_EVAL_EPISODES, description="Evaluation episodes to run.")
    robot_id: str | None = Field(
        None, min_length=1, max_length=128, description="Robot; omitted: the first bridge's."
    )
    reason: str | None = Field(None, max_length=500)


class StopEvalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    robot_id: str | None = Field(
        None, min_length=1, max_length=128, description="Robot; omitted: the first bridge's."
    )
    reason: str | None = Field(None, max_length=500)


class EvalCommandResult(BaseModel):
    robot_id: str
    ok: bool = Field(description="The bridge accepted the command.")
    reason: str = Field(description="The bridge's answer (why it refused, or what it did).")
    mode: str = Field(description="The robot's control mode after the command.")
    progress: EvalProgress | None = Field(
        None, description="The batch as the bridge's latest status reports it (may lag)."
    )


@router.get("", response_model=list[EvalBatchOut], responses=LOGIN)
def list_evals(
    user: CurrentUser,
    store: EvalsDep,
    robot: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> list[EvalBatchOut]:
    """Stored evaluation batches, oldest first: autonomous successes, weights version, env steps."""
    return store.list_evals(robot)


@router.post("", response_model=EvalCommandResult, responses=COMMAND)
async def start_eval(
    body: StartEvalRequest, user: OperatorUser, state: StateDep
) -> EvalCommandResult:
    """Start a batch of ``episodes`` evaluation episodes; 409 if the bridge refuses."""
    command = StartEval(episodes=body.episodes, operator=user.name, reason=body.reason)
    return await _send(state, body.robot_id, command, user.name)


@router.post("/stop", response_model=EvalCommandResult, responses=COMMAND)
async def stop_eval(
    body: StopEvalRequest, user: OperatorUser, state: StateDep
) -> EvalCommandResult:
    """Stop the running batch (an open evaluation episode ends as discarded)."""
    command = StopEval(operator=user.name, reason=body.reason)
    return await _send(state, body.robot_id, command, user.name)


async def _send(
    state: StateDep, robot_id: str | None, command: CommandBody, who: str
) -> EvalCommandResult:
    link = state.link
    if robot_id is not None and robot_id not in link.robots():
        raise NotFound(f"unknown robot {robot_id!r}; known: {link.robots()}")
    key = link.bridge_key(robot_id)
    holder = state.leases.holder(key)
    if holder is not None and holder.operator != who:
        raise Conflict(
            f"{holder.operator} holds the control lease of this robot; "
            f"{command.type} refused (ask them, or wait until they release it)"
        )
    reply = await link.command(command, robot_id)
    answered = time.monotonic()
    log.info("%s by %s over HTTP: %s (%s)", command.type, who, reply.ok, reply.reason)
    if not reply.ok:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the robot refused: {reply.reason}")
    # The status that already shows the command's effect: the one held now may still be
    # the previous batch's (status and replies travel on different sockets).
    latest = await link.status_after(robot_id, answered)
    return EvalCommandResult(
        robot_id=reply.robot_id, ok=reply.ok, reason=reply.reason, mode=reply.mode.value,
        progress=latest.eval if latest is not None else None,
    )  # fmt: skip
