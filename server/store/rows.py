"""Episode rows from episode files: the mapping ``meta.json`` -> database row.

Files decide everything measured (length, return, interventions, completeness);
rows keep what an operator edits later (label, notes, discarded).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from server.db import models as m
from tandem.episodes import EpisodeMeta
from tandem.messages import EpisodeKind, Outcome, episode_result

log = logging.getLogger(__name__)

EXTRA_FIELDS = ("weights_version", "eval_batch", "eval_index")  # EpisodeMeta.extra -> row


def utc(t: float) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


def policy_result(row: m.Episode) -> str | None:
    """The row's policy result: the operator's label first, then the task's success signal."""
    if row.discarded or row.outcome == Outcome.DISCARD.value:
        return None
    success = row.success if row.outcome is None else row.outcome == Outcome.SUCCESS.value
    result = episode_result(EpisodeKind(row.kind), success, row.intervention_steps)
    return None if result is None else result.value


def ensure_robot(s: Session, robot_id: str, spec: str | None = None) -> m.Robot:
    """The robot's row (created on first sight), marked as seen now."""
    robot = s.get(m.Robot, robot_id)
    if robot is None:
        robot = m.Robot(id=robot_id)
        s.add(robot)
        s.flush()
    robot.last_seen_at = datetime.now(UTC)
    if spec is not None:
        robot.spec = spec
    return robot


def row_from_meta(meta: EpisodeMeta) -> m.Episode:
    """A new row for an episode that has only its start metadata so far."""
    return m.Episode(
        id=meta.episode_id,
        robot_id=meta.robot_id,
        kind=EpisodeKind(meta.kind).value,
        operator=meta.operator,
        task=meta.task,
        started_at=utc(meta.started_wall),
        path=f"{meta.robot_id}/{meta.episode_id}",
        outcome=None if meta.outcome is None else Outcome(meta.outcome).value,
        notes=meta.notes,
        discarded=meta.outcome == Outcome.DISCARD,
        length=0,
        episode_return=0.0,
        success=False,
        intervention_count=0,
        intervention_steps=0,
        recording=False,
        complete=False,
        terminated=False,
        truncated=False,
        **_extra(meta),
    )


def _extra(meta: EpisodeMeta) -> dict[str, Any]:
    """Weights version and evaluation batch the recorder put in the metadata's ``extra``."""
    out: dict[str, Any] = {}
    for key in EXTRA_FIELDS:
        value = meta.extra.get(key)
        if value is None:
            continue
        if key == "eval_batch":
            ok = isinstance(value, str) and 0 < len(value) <= 128
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        if ok:
            out[key] = value
        else:  # a hand-edited meta.json must not stop the store from opening
            log.warning(
                "episode %s: ignoring invalid %s %r in meta.json", meta.episode_id, key, value
            )
    return out


def _measured(row: m.Episode, meta: EpisodeMeta) -> dict[str, Any]:
    """The row's fields as the finished metadata says they are."""
    ended = None if meta.ended_wall is None else utc(meta.ended_wall)
    values: dict[str, Any] = {
        "length": meta.num_steps,
        "episode_return": float(meta.episode_return),
        "success": meta.success,
        "complete": meta.complete,
        "terminated": meta.terminated,
        "truncated": meta.truncated,
        "end_reason": meta.end_reason,
        "recording": False,
        "intervention_count": len(meta.interventions),
        "intervention_steps": sum(end - start for start, end in meta.interventions),
        **_extra(meta),
    }
    if ended is not None and (
        row.ended_at is None or abs(row.ended_at - ended).total_seconds() > 1e-3
    ):
        values["ended_at"] = ended
    if row.outcome is None and meta.outcome is not None:
        values["outcome"] = Outcome(meta.outcome).value
        values["discarded"] = row.discarded or meta.outcome == Outcome.DISCARD
    return values


def apply_meta(row: m.Episode, meta: EpisodeMeta) -> bool:
    """Copy the measured fields of finished-episode metadata; True if anything changed.

    An outcome in the files fills an unlabelled row only: later labels live in the DB.
    """
    changed = {k: v for k, v in _measured(row, meta).items() if getattr(row, k) != v}
    for key, value in changed.items():
        setattr(row, key, value)
    result = policy_result(row)
    if row.result != result:
        row.result = changed["result"] = result
    spans = [(iv.start_step, iv.end_step) for iv in row.interventions]
    wanted = [tuple(span) for span in meta.interventions]
    if spans != wanted:
        row.interventions = [
            m.Intervention(start_step=a, end_step=b, operator=meta.operator) for a, b in wanted
        ]
        changed["interventions"] = wanted
    return bool(changed)
