"""Evaluation batches, built from their finished evaluation episodes."""

from __future__ import annotations

from sqlalchemy import select

from server.db import models as m
from server.db.schemas import EvalBatchOut
from server.store.database import Database
from server.store.metrics import fill_env_steps
from tandem.messages import EpisodeKind, EpisodeResult

MAX_EVAL_EPISODES = 20_000  # evaluation episodes read to build the batch list


class EvalStore:
    """Read-only view of the evaluation episodes, grouped by batch."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list_evals(self, robot: str | None = None) -> list[EvalBatchOut]:
        """Evaluation batches oldest first, from their finished episodes with a result.

        Env steps missing when an episode finished (metrics not stored yet) are filled now.
        """
        query = (
            select(m.Episode)
            .where(m.Episode.kind == EpisodeKind.EVALUATION.value)
            .where(m.Episode.eval_batch.is_not(None))
            .order_by(m.Episode.started_at.desc())
            .limit(MAX_EVAL_EPISODES)
        )
        if robot is not None:
            query = query.where(m.Episode.robot_id == robot)
        with self.db.session() as s:
            rows = list(reversed(s.scalars(query).all()))
            known: dict[int, int | None] = {}  # one lookup per weights version
            for row in rows:
                fill_env_steps(s, row, known)
            batches: dict[str, list[m.Episode]] = {}
            for row in rows:
                batches.setdefault(str(row.eval_batch), []).append(row)
            return [_eval_batch(rows) for rows in batches.values()]


def _eval_batch(rows: list[m.Episode]) -> EvalBatchOut:
    done = [r for r in rows if r.result is not None and not r.recording]
    wins = sum(r.result == EpisodeResult.AUTONOMOUS_SUCCESS.value for r in done)
    versions = sorted({r.weights_version for r in rows if r.weights_version is not None})
    steps = [r.env_steps for r in rows if r.env_steps is not None]
    ends = [r.ended_at for r in rows if r.ended_at is not None]
    return EvalBatchOut(
        batch=str(rows[0].eval_batch), robot_id=rows[0].robot_id, started_at=rows[0].started_at,
        ended_at=max(ends) if ends else None, episodes=len(done), successes=wins,
        success_rate=wins / len(done) if done else None,
        weights_version=rows[0].weights_version, weights_versions=versions,
        env_steps=steps[0] if steps else None, episode_ids=[r.id for r in rows],
    )  # fmt: skip
