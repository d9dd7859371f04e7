"""Pydantic read models the store returns (the HTTP app serialises these)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field

from server.db.models import Role
from tandem.messages import EpisodeKind, EpisodeResult, Outcome


class _ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class InterventionOut(_ReadModel):
    start_step: int = Field(description="First human-driven step (index in the episode).")
    end_step: int = Field(description="One past the last human-driven step.")
    operator: str | None = None


class EpisodeOut(_ReadModel):
    """One episode row; arrays and frames are fetched separately."""

    id: str
    robot_id: str
    kind: EpisodeKind
    operator: str | None
    task: str | None
    started_at: datetime
    ended_at: datetime | None
    length: int = Field(description="Number of steps on disk (or recorded so far).")
    outcome: Outcome | None = Field(description="Operator label; None until labelled.")
    labeled_by: str | None
    episode_return: float = Field(description="Sum of rewards.")
    success: bool = Field(description="The task reported success at some step.")
    intervention_count: int
    intervention_steps: int
    discarded: bool
    notes: str
    path: str = Field(description="Episode directory relative to <data_dir>/episodes.")
    recording: bool = Field(description="The recorder is still writing this episode.")
    complete: bool = Field(
        description="Ended normally with every step recorded (false after a crash or lost steps)."
    )
    terminated: bool
    truncated: bool
    end_reason: str | None
    result: EpisodeResult | None = Field(
        None,
        description="Policy episodes: autonomous_success (succeeded with zero human steps), "
        "assisted_success (succeeded after a take-over) or failure; None for demos and "
        "discarded episodes. The operator's label counts over the task's success signal.",
    )
    weights_version: int | None = Field(None, description="Weights version that started it.")
    env_steps: int | None = Field(
        None, description="The learner's env steps when that weights version was current."
    )
    eval_batch: str | None = Field(None, description="Evaluation batch (evaluation episodes).")
    eval_index: int | None = Field(None, description="1-based position in the batch.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def autonomous_success(self) -> bool:
        """The policy succeeded alone (the only success that counts as the policy's)."""
        return self.result is EpisodeResult.AUTONOMOUS_SUCCESS


class EpisodeDetail(EpisodeOut):
    interventions: list[InterventionOut]


class EvalBatchOut(BaseModel):
    """One evaluation batch: its episodes' autonomous successes, weights and env steps."""

    batch: str
    robot_id: str
    started_at: datetime
    ended_at: datetime | None
    episodes: int = Field(description="Finished evaluation episodes with a result.")
    successes: int = Field(description="Autonomous successes among them.")
    success_rate: float | None = Field(description="successes / episodes; None without episodes.")
    weights_version: int | None = Field(description="Weights version of the first episode.")
    weights_versions: list[int] = Field(description="Every weights version that acted.")
    env_steps: int | None = Field(
        description="The learner's env steps at the first episode's weights version."
    )
    episode_ids: list[str]


class OperatorOut(_ReadModel):
    id: int
    name: str
    role: Role
    created_at: datetime


class ResetOut(_ReadModel):
    id: int
    robot_id: str
    requested_at: datetime
    done_at: datetime | None
    duration_s: float | None


class LearnerRunOut(_ReadModel):
    id: str
    method: str | None
    started_at: datetime
    last_seen_at: datetime | None


class ReconcileReport(BaseModel):
    """What ``EpisodeStore.reconcile`` changed to make the database agree with the files."""

    recovered: list[str] = Field(default_factory=list, description="Interrupted episodes kept.")
    added: list[str] = Field(default_factory=list, description="Rows created from files.")
    updated: list[str] = Field(default_factory=list, description="Rows corrected from files.")
    removed: list[str] = Field(default_factory=list, description="Rows whose files are gone.")
