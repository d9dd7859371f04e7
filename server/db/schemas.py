"""Pydantic read models the store returns (the HTTP app serialises these)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from server.db.models import Role
from tandem.messages import EpisodeKind, Outcome


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


class EpisodeDetail(EpisodeOut):
    interventions: list[InterventionOut]


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
