"""``GET /api/health``: can this server do its job? For probes (compose, load balancers).

No login: a probe has no token, and the answer holds no secret (booleans, ages, the
bridges' endpoints). The status code is the server's own fitness: 200 when the
database answers and the recorder (when this server records) is running, 503 when
not. Bridges and the learner are other processes: their state is reported in the
body, but a bridge or learner that is down does not make the server unhealthy
(restarting the server would not bring them back).
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import text

from server.deps import AppState, StateDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["health"])

BRIDGE_STALE_S = 3.0  # a bridge publishes its status at least every second
LEARNER_STALE_S = 30.0  # the learner publishes metrics every few seconds while it runs


class Check(BaseModel):
    ok: bool
    detail: str = ""


class BridgeHealth(Check):
    endpoint: str
    robot_id: str | None = None
    status_age_s: float | None = Field(None, description="Age of the latest status message.")


class Health(BaseModel):
    ok: bool = Field(description="The server itself is fit: database and recorder.")
    database: Check
    recorder: Check
    bridges: list[BridgeHealth]
    learner: Check
    server_time: float


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(state: StateDep, response: Response) -> Health:
    """Database, recorder, bridge links and learner, each with a short reason."""
    database = await asyncio.to_thread(_database, state)
    recorder = _recorder(state)
    ok = database.ok and recorder.ok
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(
        ok=ok, database=database, recorder=recorder, bridges=_bridges(state),
        learner=_learner(state), server_time=time.time(),
    )  # fmt: skip


def _database(state: AppState) -> Check:
    try:
        with state.store.session() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the same to a probe: not fit
        log.warning("health: database check failed: %s", exc)
        return Check(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300])
    return Check(ok=True, detail=state.store.engine.dialect.name)


def _recorder(state: AppState) -> Check:
    if "recorder" not in state.extra or state.extra["recorder"] is None:
        return Check(ok=True, detail="not recording (record=False)")
    alive = bool(getattr(state.extra["recorder"], "running", False))
    return Check(ok=alive, detail="running" if alive else "the recorder thread has stopped")


def _bridges(state: AppState) -> list[BridgeHealth]:
    out = []
    for _index, endpoint, status_msg, age in state.link.statuses():
        fresh = age is not None and age < BRIDGE_STALE_S
        detail = (
            "no status received yet" if age is None
            else f"last status {age:.1f} s ago" + ("" if fresh else " (stale)")
        )  # fmt: skip
        robot_id = status_msg.robot_id if status_msg else None
        health = BridgeHealth(
            ok=fresh, detail=detail, endpoint=endpoint, status_age_s=age, robot_id=robot_id
        )
        out.append(health)
    return out


def _learner(state: AppState) -> Check:
    if not state.settings.server.learner_metrics_endpoint:
        return Check(ok=True, detail="no learner configured")
    latest = state.link.latest_metrics.values()
    if not latest:
        return Check(ok=False, detail="no learner metrics received yet")
    age = time.time() - max(m.t_wall for m in latest)
    fresh = age < LEARNER_STALE_S
    return Check(ok=fresh, detail=f"last metrics {age:.0f} s ago" + ("" if fresh else " (stale)"))
