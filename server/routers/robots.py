"""Robots and server status (``/api/robots``, ``/api/state``, ``/api/resets``)."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from server.bridge_link import finite_json
from server.db.schemas import ResetOut
from server.deps import ActivityDep, CurrentUser, StateDep
from server.responses import LOGIN

router = APIRouter(prefix="/api", tags=["robots"], responses=LOGIN)


class LeaseOut(BaseModel):
    robot: str
    operator: str
    held_s: float
    expires_in_s: float


class RobotOut(BaseModel):
    index: int = Field(description="Position in server.bridges.")
    endpoint: str
    robot_id: str | None = Field(description="None until the bridge has published a status.")
    online: bool = Field(description="A status arrived within the last 3 s.")
    status_age_s: float | None
    status: dict[str, Any] | None = Field(description="The latest BridgeStatus, as JSON.")
    lease: LeaseOut | None


class ServerState(BaseModel):
    server_time: float = Field(description="Unix time, s.")
    robots: list[RobotOut]
    link: dict[str, int] = Field(description="Bridge-link counters.")
    recorder: dict[str, Any] | None = Field(description="Recorder counters, if recording.")
    telemetry_clients: int


ONLINE_S = 3.0


def _robots(state: StateDep) -> list[RobotOut]:
    out = []
    now = time.monotonic()
    for index, endpoint, status, age in state.link.statuses():
        key = state.link.bridge_key(status.robot_id if status else None, index=index)
        holder = state.leases.holder(key)
        lease = None
        if holder is not None:
            remaining = state.leases.remaining_s(key) or 0.0
            lease = LeaseOut(
                robot=holder.robot_id,
                operator=holder.operator,
                held_s=now - holder.since,
                expires_in_s=remaining,
            )
        out.append(
            RobotOut(
                index=index,
                endpoint=endpoint,
                robot_id=status.robot_id if status else None,
                online=age is not None and age < ONLINE_S,
                status_age_s=age,
                status=finite_json(status.model_dump(mode="json", exclude={"frames"}))
                if status
                else None,
                lease=lease,
            )
        )
    return out


@router.get("/robots", response_model=list[RobotOut])
def list_robots(user: CurrentUser, state: StateDep) -> list[RobotOut]:
    """Every configured bridge with its latest status and control lease."""
    return _robots(state)


@router.get("/state", response_model=ServerState)
def server_state(user: CurrentUser, state: StateDep) -> ServerState:
    """Robots plus link, recorder and fan-out counters (for the dashboard's health panel)."""
    recorder = state.extra.get("recorder")
    stats = getattr(recorder, "stats", None)
    return ServerState(
        server_time=time.time(),
        robots=_robots(state),
        link=dataclasses.asdict(state.link.stats),
        recorder=dataclasses.asdict(stats()) if callable(stats) else None,
        telemetry_clients=len(state.hubs.telemetry),
    )


@router.get("/resets", response_model=list[ResetOut])
def list_resets(
    user: CurrentUser,
    store: ActivityDep,
    robot: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ResetOut]:
    """Scene resets, newest first (requested and done times, duration)."""
    return store.list_resets(robot, limit)
