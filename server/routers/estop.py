"""E-stop over plain HTTP (``POST /api/estop``), reachable without a control lease.

Any logged-in user, viewers included, may stop the robots: stopping is never
the dangerous direction. Clearing the latched e-stop needs an operator.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from server.bridge_link import BridgeError
from server.deps import CurrentUser, LinkDep, OperatorUser
from server.responses import LOGIN, OPERATOR
from tandem.messages import ClearEStop, CommandBody, CommandReply, EStop

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/estop", tags=["estop"])


class EStopRequest(BaseModel):
    robot_id: str | None = Field(
        None, max_length=128, description="Robot to stop; omitted: every connected robot."
    )
    reason: str | None = Field(None, max_length=500)


class RobotResult(BaseModel):
    robot: str = Field(description="Robot id (or the bridge endpoint if not yet known).")
    ok: bool
    reason: str = ""
    mode: str | None = None


class EStopResult(BaseModel):
    ok: bool = Field(description="Every addressed bridge accepted the command.")
    results: list[RobotResult]


async def _send(
    link: LinkDep, body: EStopRequest, make: type[EStop | ClearEStop], who: str
) -> EStopResult:
    def command() -> CommandBody:
        return make(operator=who, reason=body.reason)

    if body.robot_id is not None:
        try:
            reply = await link.command(command(), body.robot_id)
            outcomes: list[tuple[str, CommandReply | BridgeError]] = [(body.robot_id, reply)]
        except BridgeError as exc:
            outcomes = [(body.robot_id, exc)]
    else:
        outcomes = await link.command_all(command)
    results = [
        RobotResult(robot=name, ok=r.ok, reason=r.reason, mode=r.mode.value)
        if isinstance(r, CommandReply)
        else RobotResult(robot=name, ok=False, reason=str(r))
        for name, r in outcomes
    ]
    return EStopResult(ok=bool(results) and all(r.ok for r in results), results=results)


@router.post("", response_model=EStopResult, responses={**LOGIN, 502: {"model": EStopResult}})
async def estop(
    body: EStopRequest, user: CurrentUser, link: LinkDep, response: Response
) -> EStopResult:
    """Latch the e-stop on one or every robot. 502 if any bridge did not confirm."""
    log.warning("E-STOP requested by %s over HTTP (robot=%s)", user.name, body.robot_id or "all")
    result = await _send(link, body, EStop, user.name)
    if not result.ok:
        response.status_code = status.HTTP_502_BAD_GATEWAY
        log.error("e-stop not confirmed by every bridge: %s", result.results)
    return result


@router.post(
    "/clear", response_model=EStopResult, responses={**OPERATOR, 502: {"model": EStopResult}}
)
async def clear_estop(
    body: EStopRequest, user: OperatorUser, link: LinkDep, response: Response
) -> EStopResult:
    """Clear the latched e-stop (operators only). 502 if any bridge refused."""
    log.warning("e-stop clear requested by %s (robot=%s)", user.name, body.robot_id or "all")
    result = await _send(link, body, ClearEStop, user.name)
    if not result.ok:
        response.status_code = status.HTTP_502_BAD_GATEWAY
    return result
