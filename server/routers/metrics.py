"""Training metrics history (``/api/metrics``); live values arrive on ``/ws/telemetry``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from server.bridge_link import metrics_row
from server.db.schemas import LearnerRunOut
from server.deps import CurrentUser, LinkDep, MetricsStoreDep
from server.responses import LOGIN

router = APIRouter(prefix="/api/metrics", tags=["metrics"], responses=LOGIN)


class MetricsHistory(BaseModel):
    run_id: str
    series: dict[str, list[tuple[float, float]]] = Field(
        description="name -> [(unix time s, value), ...] oldest first, downsampled."
    )


@router.get("/runs", response_model=list[LearnerRunOut])
def list_runs(user: CurrentUser, store: MetricsStoreDep) -> list[LearnerRunOut]:
    """Learner runs that reported metrics, newest first."""
    return store.list_runs()


@router.get("/latest")
def latest(user: CurrentUser, link: LinkDep) -> list[dict[str, Any]]:
    """The newest metrics message of every run seen since the server started."""
    return [metrics_row(m) for m in link.latest_metrics.values()]


@router.get("/{run_id}", response_model=MetricsHistory)
def history(
    *,
    run_id: Annotated[str, Path(min_length=1, max_length=128)],
    user: CurrentUser,
    store: MetricsStoreDep,
    names: Annotated[
        str | None, Query(max_length=4000, description="Comma-separated metric names.")
    ] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="Unix time, s.")] = None,
    max_points: Annotated[int, Query(ge=2, le=20_000)] = 2000,
) -> MetricsHistory:
    """Downsampled history of a run's metrics (all names unless ``names`` is given)."""
    wanted = [n for n in (names or "").split(",") if n] or None
    series = store.metrics_history(run_id, wanted, since, max_points)
    return MetricsHistory(run_id=run_id, series=series)
