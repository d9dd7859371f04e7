"""What the server sends to browsers on ``/ws/telemetry``, one model per message ``type``.

These are JSON text messages, not ZMQ messages: they carry no ``seq`` or
frames. ``to_json()`` serializes one strictly (NaN and infinities become
``null``), once for every client. ``web/js`` reads these field names.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tandem.messages.base import ActionSource, ControlMode, EpisodeKind, EpisodeResult, Outcome
from tandem.messages.bridge import BridgeStatus, StepRecord
from tandem.messages.learner import LearnerMetrics


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def to_json(payload: dict[str, Any]) -> str:
    """Strict compact JSON of ``payload`` (NaN and infinities become null)."""
    return json.dumps(finite_json(payload), separators=(",", ":"), allow_nan=False)


class Telemetry(BaseModel):
    """Base of the browser telemetry messages."""

    model_config = ConfigDict(populate_by_name=True)

    def to_json(self) -> str:
        return to_json(self.model_dump(mode="json", by_alias=True))


class Hello(Telemetry):
    """Sent once when a client connects."""

    type: Literal["hello"] = "hello"
    server_time: float = Field(description="Server Unix time, s.")
    user: str
    role: str
    robots: list[str] = Field(description="Robot ids seen so far, in bridge order.")


class RobotState(BridgeStatus):
    """A robot's latest ``BridgeStatus`` (keep-latest per robot), without its frame list."""

    type: Literal["state"] = "state"

    @classmethod
    def of(cls, status: BridgeStatus) -> RobotState:
        return cls.model_construct(**dict(status), type="state")  # already validated

    def to_json(self) -> str:
        return to_json(self.model_dump(mode="json", exclude={"frames"}))


class RolloutSample(Telemetry):
    """One control step: who acted, the proposals and their Q values."""

    type: Literal["rollout"] = "rollout"
    robot_id: str
    episode_id: str
    episode_kind: EpisodeKind
    step: int
    mode: ControlMode
    source: ActionSource
    intervention: bool
    reward: float
    success: bool
    action: list[float]
    policy_action: list[float] | None
    human_action: list[float] | None
    state: list[float]
    proposal: str | None
    q_il: float | None
    q_rl: float | None
    weights_version: int | None
    t_wall: float
    uncertainty: float | None = Field(
        None, description="The policy's uncertainty at this step (PolicyInfo.uncertainty)."
    )

    @classmethod
    def of(cls, rec: StepRecord) -> RolloutSample:
        info = rec.policy_info
        return cls(
            robot_id=rec.robot_id,
            episode_id=rec.episode_id,
            episode_kind=rec.episode_kind,
            step=rec.step,
            mode=rec.mode,
            source=rec.action_source,
            intervention=rec.intervention,
            reward=rec.reward,
            success=rec.success,
            action=rec.action,
            policy_action=rec.policy_action,
            human_action=rec.human_action,
            state=rec.state,
            proposal=info.proposal if info else None,
            q_il=info.q_il if info else None,
            q_rl=info.q_rl if info else None,
            weights_version=info.weights_version if info else None,
            t_wall=rec.t_wall,
            uncertainty=info.uncertainty if info else None,
        )


class EpisodeFields(Telemetry):
    """Fields of every episode message, taken from the bridge's ``EpisodeEvent``."""

    robot_id: str
    episode_id: str
    episode_kind: EpisodeKind
    reason: str
    outcome: Outcome | None
    weights_version: int | None
    eval_batch: str | None
    eval_index: int | None
    t_wall: float


class EpisodeNotice(EpisodeFields):
    """An episode started, or was labelled."""

    type: Literal["episode_start", "episode_label"]


class EpisodeSummary(EpisodeFields):
    """An episode ended: its live tally (the store's row follows when the recorder is done)."""

    type: Literal["episode_summary"] = "episode_summary"
    length: int
    return_: float = Field(alias="return")
    success: bool
    result: EpisodeResult | None
    interventions: int
    intervention_steps: int
    intervention_rate: float
    duration_s: float | None
    terminated: bool
    truncated: bool


class MetricsRow(BaseModel):
    """One ``LearnerMetrics`` message as charts draw it."""

    run_id: str
    update_step: int
    env_steps: int
    t_wall: float
    scalars: dict[str, float | None]

    @classmethod
    def of(cls, msg: LearnerMetrics) -> MetricsRow:
        return cls(
            run_id=msg.run_id,
            update_step=msg.update_step,
            env_steps=msg.env_steps,
            t_wall=msg.t_wall,
            scalars=finite_json(msg.metrics),
        )


class MetricsBatch(Telemetry):
    """Learner metrics gathered over ``server.metrics_batch_s``."""

    type: Literal["metrics"] = "metrics"
    rows: list[MetricsRow]
