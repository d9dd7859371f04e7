"""Recorded episodes (``/api/episodes``): browse, replay, label, annotate, discard, delete."""

from __future__ import annotations

import io
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from server.bridge_link import BridgeError
from server.db.schemas import EpisodeDetail, EpisodeOut
from server.deps import CurrentUser, EpisodesDep, LinkDep, OperatorUser
from server.responses import BAD_REQUEST, CONFLICT, LOGIN, NOT_FOUND, OPERATOR
from tandem.episodes import MODES, SOURCES
from tandem.messages import EpisodeKind, EpisodeResult, LabelEpisode, Outcome

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/episodes", tags=["episodes"], responses=LOGIN)

EpisodeId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
OutcomeFilter = Literal["success", "failure", "discard", "unlabeled"]


class EpisodePage(BaseModel):
    items: list[EpisodeOut]
    total: int = Field(description="Episodes matching the filters (all pages).")
    offset: int
    limit: int


class LabelRequest(BaseModel):
    outcome: Outcome


class NotesRequest(BaseModel):
    notes: str = Field(max_length=10_000)


class EpisodeArrays(BaseModel):
    """Per-step arrays for replay; NaN (no proposal / no human action) becomes null."""

    episode_id: str
    length: int
    cameras: list[str]
    step: list[int]
    action: list[list[float]] = Field(description="Applied actions, (T, 7), in [-1, 1].")
    policy_action: list[list[float | None]]
    human_action: list[list[float | None]]
    reward: list[float]
    success: list[bool]
    terminated: list[bool]
    truncated: list[bool]
    intervention: list[bool]
    action_source: list[str] = Field(description="policy, human or hold per step.")
    mode: list[str]
    state: list[list[float]] = Field(description="Proprioception, (T, state_dim).")
    t_wall: list[float] = Field(description="Unix time of each step, s.")


@router.get("", response_model=EpisodePage)
def list_episodes(
    *,
    user: CurrentUser,
    store: EpisodesDep,
    robot: Annotated[str | None, Query(max_length=128)] = None,
    kind: EpisodeKind | None = None,
    outcome: OutcomeFilter | None = None,
    operator: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    complete: bool | None = None,
    discarded: bool | None = None,
    result: EpisodeResult | None = None,
    eval_batch: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EpisodePage:
    """Episodes newest first; filters combine with AND; ``since``/``until`` bound the start.

    ``result``: autonomous_success (the policy alone), assisted_success (a human helped) or
    failure; ``eval_batch``: the episodes of one evaluation batch.
    """
    items, total = store.list_episodes(
        robot=robot,
        kind=kind,
        outcome=outcome,
        operator=operator,
        since=since,
        until=until,
        complete=complete,
        discarded=discarded,
        result=result,
        eval_batch=eval_batch,
        offset=offset,
        limit=limit,
    )
    return EpisodePage(items=items, total=total, offset=offset, limit=limit)


@router.get("/{episode_id}", response_model=EpisodeDetail, responses=NOT_FOUND)
def get_episode(episode_id: EpisodeId, user: CurrentUser, store: EpisodesDep) -> EpisodeDetail:
    """One episode with its intervention spans."""
    return store.get_episode(episode_id)


@router.get(
    "/{episode_id}/frames/{camera}/{step}",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}, "description": "The JPEG image."}},
)
def get_frame(
    episode_id: EpisodeId,
    camera: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")],
    step: Annotated[int, Path(ge=0, le=10**7)],
    user: CurrentUser,
    store: EpisodesDep,
) -> Response:
    """Camera ``camera`` at step index ``step`` as a JPEG."""
    jpeg = store.frame_jpeg(episode_id, camera, step)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.get(
    "/{episode_id}/arrays",
    response_model=EpisodeArrays,
    responses={**NOT_FOUND, 200: {"content": {"application/x-npz": {}}}},
)
def get_arrays(
    episode_id: EpisodeId,
    user: CurrentUser,
    store: EpisodesDep,
    format: Literal["json", "npz"] = "json",
) -> Any:
    """Actions, rewards, intervention flags and action sources for replay (JSON or npz)."""
    episode = store.load(episode_id, images=False)
    steps = episode.steps
    if format == "npz":
        buf = io.BytesIO()
        np.savez(buf, **steps)  # type: ignore[arg-type]
        return Response(
            buf.getvalue(),
            media_type="application/x-npz",
            headers={"Content-Disposition": f'attachment; filename="{episode_id}.npz"'},
        )
    return EpisodeArrays(
        episode_id=episode_id,
        length=len(episode),
        cameras=episode.meta.cameras,
        step=steps["step"].tolist(),
        action=steps["action"].tolist(),
        policy_action=_nan_to_none(steps["policy_action"]),
        human_action=_nan_to_none(steps["human_action"]),
        reward=steps["reward"].tolist(),
        success=steps["success"].tolist(),
        terminated=steps["terminated"].tolist(),
        truncated=steps["truncated"].tolist(),
        intervention=steps["intervention"].tolist(),
        action_source=[SOURCES[i].value for i in steps["action_source"].tolist()],
        mode=[MODES[i].value for i in steps["mode"].tolist()],
        state=steps["state"].tolist(),
        t_wall=steps["t_wall"].tolist(),
    )


def _nan_to_none(array: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(x) else float(x) for x in row] for row in array.tolist()]


@router.post(
    "/{episode_id}/label", response_model=EpisodeOut, responses=OPERATOR | NOT_FOUND | CONFLICT
)
async def label_episode(
    episode_id: EpisodeId, body: LabelRequest, user: OperatorUser, store: EpisodesDep, link: LinkDep
) -> EpisodeOut:
    """Set the outcome label; the recording bridge is told too (best effort) so the
    learner sees the relabel."""
    out = await run_in_threadpool(store.label, episode_id, body.outcome, user.name)
    if out.robot_id in link.robots():
        cmd = LabelEpisode(episode_id=episode_id, label=body.outcome, operator=user.name)
        try:
            reply = await link.command(cmd, out.robot_id)
            if not reply.ok:
                log.info("bridge did not relabel %s: %s", episode_id, reply.reason)
        except BridgeError as exc:
            log.warning("relabel of %s not sent to the bridge: %s", episode_id, exc)
    return out


@router.post("/{episode_id}/notes", response_model=EpisodeOut, responses=OPERATOR | NOT_FOUND)
def annotate_episode(
    episode_id: EpisodeId, body: NotesRequest, user: OperatorUser, store: EpisodesDep
) -> EpisodeOut:
    """Replace the episode's free-text notes."""
    return store.annotate(episode_id, body.notes)


@router.post("/{episode_id}/discard", response_model=EpisodeOut, responses=OPERATOR | NOT_FOUND)
def discard_episode(episode_id: EpisodeId, user: OperatorUser, store: EpisodesDep) -> EpisodeOut:
    """Mark as discarded (files are kept; ``restore`` undoes it)."""
    return store.discard(episode_id)


@router.post("/{episode_id}/restore", response_model=EpisodeOut, responses=OPERATOR | NOT_FOUND)
def restore_episode(episode_id: EpisodeId, user: OperatorUser, store: EpisodesDep) -> EpisodeOut:
    """Undo a discard."""
    return store.restore(episode_id)


@router.delete(
    "/{episode_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=OPERATOR | NOT_FOUND | BAD_REQUEST,
)
def delete_episode(
    episode_id: EpisodeId,
    user: OperatorUser,
    store: EpisodesDep,
    confirm: Annotated[str, Query(max_length=128, description="Must repeat the episode id.")],
) -> None:
    """Delete files and rows for good; ``confirm`` must equal the episode id."""
    if confirm != episode_id:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "to delete, pass confirm=<the episode id> in the query"
        )
    store.delete(episode_id)
    log.info("episode %s deleted by %s", episode_id, user.name)
