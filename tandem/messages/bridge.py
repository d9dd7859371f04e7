"""Messages the robot bridge publishes: steps, episode events, status, camera frames."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tandem.messages.base import (
    ACTION_DIM,
    ActionSource,
    ControlMode,
    EpisodeKind,
    Message,
    Outcome,
    finite_vector,
)


def _action(values: list[float] | None) -> list[float] | None:
    return None if values is None else finite_vector(values, length=ACTION_DIM, what="action")


class PolicyInfo(BaseModel):
    """What the policy slot said about its proposal at this tick."""

    model_config = ConfigDict(extra="forbid")

    proposal: Literal["il", "rl", "expert"] | None = Field(
        None, description="Which proposal the policy took (IBRL: imitation or RL actor)."
    )
    q_il: float | None = Field(None, description="Target-critic value of the IL proposal.")
    q_rl: float | None = Field(None, description="Target-critic value of the RL proposal.")
    weights_version: int | None = Field(None, description="Weights version that acted.")
    uncertainty: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="How unsure the policy is of this action (>= 0, larger: less sure; "
        "learner.uncertainty, bench/uncertainty.py). None: the policy reports none.",
    )


class StepRecord(Message):
    """One control tick: observation at t, the action applied at t and its outcome.

    Camera images travel as frames named ``cam/<camera>`` (uint8, H x W x 3).
    ``state`` is the proprioception vector (see the backend's observation
    spec). ``terminated`` and ``truncated`` describe the result of applying
    ``action``; the observation after the last action comes with the episode's
    ``end`` event.
    """

    TOPIC: ClassVar[str] = "step"

    robot_id: str = Field(min_length=1)
    episode_id: str = Field(min_length=1)
    episode_kind: EpisodeKind
    step: int = Field(ge=0, description="Index of this tick within its episode.")
    mode: ControlMode
    state: list[float] = Field(description="Proprioception at t (backend-defined order).")
    action: list[float] = Field(description="Action applied at t, 7-D in [-1, 1].")
    policy_action: list[float] | None = Field(None, description="Policy proposal at t, if any.")
    human_action: list[float] | None = Field(None, description="Operator action at t, if any.")
    action_source: ActionSource
    intervention: bool = Field(False, description="A human drove this tick of a rollout.")
    reward: float = 0.0
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    t_obs: float = Field(description="Monotonic time the observation was captured, s.")
    policy_info: PolicyInfo | None = None

    _check_state = field_validator("state")(lambda v: finite_vector(v, what="state"))
    _check_action = field_validator("action")(
        lambda v: finite_vector(v, length=ACTION_DIM, what="action")
    )
    _check_optional = field_validator("policy_action", "human_action")(_action)


class EpisodeEvent(Message):
    """Start, end or later label of an episode, on the lossless ``episode`` topic.

    An ``end`` event carries the final observation (``final_state`` and frames
    ``cam/<camera>``) so that a time-limit truncation can be bootstrapped.
    """

    TOPIC: ClassVar[str] = "episode"

    robot_id: str = Field(min_length=1)
    episode_id: str = Field(min_length=1)
    episode_kind: EpisodeKind
    event: Literal["start", "end", "label"]
    reason: Literal[
        "started",
        "success",
        "operator_label",
        "time_limit",
        "safety_stop",
        "relabel",
        "take_over",
        "eval_stopped",
    ] = Field(
        "started",
        description="take_over: a human took over an evaluation episode (it is a failure); "
        "eval_stopped: the operator stopped the evaluation batch (discarded).",
    )
    outcome: Outcome | None = None
    num_steps: int = Field(0, ge=0)
    last_step_seq: int | None = Field(None, description="seq of the episode's last step record.")
    terminated: bool = False
    truncated: bool = False
    final_state: list[float] | None = None
    operator: str | None = None
    weights_version: int | None = Field(
        None, ge=0, description="Weights version loaded when the episode started."
    )
    eval_batch: str | None = Field(
        None, max_length=128, description="Evaluation batch of an evaluation episode."
    )
    eval_index: int | None = Field(
        None, ge=1, description="1-based position of an evaluation episode in its batch."
    )


class SafetyEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t_wall: float
    kind: Literal[
        "non_finite", "bad_shape", "clipped", "workspace", "estop", "stale_command", "link_lost"
    ]
    detail: str


class LoopTiming(BaseModel):
    """Control-loop timing over the last status window (milliseconds)."""

    model_config = ConfigDict(extra="forbid")

    rate_hz: float = 0.0
    lateness_p50_ms: float = 0.0
    lateness_p99_ms: float = 0.0
    lateness_max_ms: float = 0.0
    work_p50_ms: float = 0.0
    work_p99_ms: float = 0.0
    overruns: int = 0
    ticks: int = 0


class Transition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_mode: ControlMode
    to_mode: ControlMode
    reason: str
    t_wall: float


class EvalProgress(BaseModel):
    """The bridge's current (or last) evaluation batch."""

    model_config = ConfigDict(extra="forbid")

    batch: str = Field(description="Batch id (also on each of its episodes).")
    total: int = Field(ge=1, description="Episodes asked for.")
    done: int = Field(0, ge=0, description="Episodes finished (stopped ones excluded).")
    successes: int = Field(0, ge=0, description="Autonomous successes so far.")
    running: bool = Field(True, description="False once finished or stopped.")
    auto_reset: bool = Field(
        description="The robot resets itself between episodes (sim); else it waits for reset_done."
    )
    stopped_reason: str | None = None


class BridgeStatus(Message):
    """Published at least once a second (keep-latest)."""

    TOPIC: ClassVar[str] = "status"

    robot_id: str
    robot: str = Field(description="Backend spec, e.g. sim:lift.")
    mode: ControlMode
    episode_id: str | None = None
    episode_kind: EpisodeKind | None = None
    step: int = 0
    horizon: int | None = Field(None, description="Episode step limit (the time limit), steps.")
    ee_pos: list[float] | None = Field(None, description="End-effector position, m, base frame.")
    ee_quat: list[float] | None = Field(
        None, description="End-effector orientation quaternion (w, x, y, z), base frame."
    )
    gripper: float | None = Field(None, description="Gripper opening in [0, 1].")
    link_ok: bool = True
    policy_ready: bool = False
    policy_kind: Literal["expert", "learner", "play"] | None = Field(
        None,
        description="What fills the policy slot (bridge.policy): the scripted expert, the "
        "learner's weights, or the Proto-RL explorer (play); None when the bridge does not say.",
    )
    weights_version: int | None = None
    weights_lag: int | None = Field(None, description="Versions behind the newest announced.")
    estop_reason: str | None = None
    timing: LoopTiming = Field(default_factory=LoopTiming)
    safety_events: list[SafetyEvent] = Field(default_factory=list)
    last_transition: Transition | None = None
    eval: EvalProgress | None = Field(None, description="Current or last evaluation batch.")


class CameraFrame(Message):
    """A live camera image (keep-latest); one JPEG frame named ``image``."""

    TOPIC: ClassVar[str] = "frame"

    robot_id: str
    camera: str
    frame_seq: int = Field(ge=0)
    t_capture: float = Field(description="Monotonic capture time of the image, s.")
