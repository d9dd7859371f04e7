"""Commands to the bridge and its replies (a discriminated union on ``type``)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from tandem.messages.base import ACTION_DIM, ControlMode, Message, Outcome, finite_vector

MAX_EVAL_EPISODES = 1000
MAX_COMMAND_HEADER_BYTES = 16 * 1024  # a command header is a few hundred bytes


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operator: str | None = Field(None, description="Who issued the command.")
    reason: str | None = Field(None, max_length=500, description="Free-text reason, logged.")


class StartDemo(_Cmd):
    type: Literal["start_demo"] = "start_demo"


class StartRollout(_Cmd):
    type: Literal["start_rollout"] = "start_rollout"


class StartEval(_Cmd):
    """Run ``episodes`` evaluation episodes back to back (deterministic policy, no human)."""

    type: Literal["start_eval"] = "start_eval"
    episodes: int = Field(ge=1, le=MAX_EVAL_EPISODES, description="Episodes in the batch.")


class StopEval(_Cmd):
    """Stop the running evaluation batch; an open evaluation episode ends as discarded."""

    type: Literal["stop_eval"] = "stop_eval"


class TakeOver(_Cmd):
    type: Literal["take_over"] = "take_over"


class HandBack(_Cmd):
    type: Literal["hand_back"] = "hand_back"


class TeleopAction(_Cmd):
    """A mapped 7-D operator action (keep-latest), or ``None``: the input is neutral.

    The bridge refuses an action older than its watchdog, aged from ``t_input``
    (through a clock-offset estimate per link), and a neutral input clears the
    action it holds (docs/bridge.md).
    """

    type: Literal["teleop_action"] = "teleop_action"
    action: list[float] | None = Field(
        description="7-D action in [-1, 1]; None: neutral input (deadman released), hold."
    )
    t_input: float = Field(
        description="When the operator made the input, on the sender's monotonic clock, s."
    )

    @field_validator("action")
    @classmethod
    def _check(cls, v: list[float] | None) -> list[float] | None:
        return None if v is None else finite_vector(v, length=ACTION_DIM, what="action")


class EndEpisode(_Cmd):
    type: Literal["end_episode"] = "end_episode"
    label: Outcome


class LabelEpisode(_Cmd):
    """Relabel a finished episode (for example while awaiting reset)."""

    type: Literal["label_episode"] = "label_episode"
    episode_id: str
    label: Outcome


class ResetDone(_Cmd):
    type: Literal["reset_done"] = "reset_done"


class EStop(_Cmd):
    type: Literal["estop"] = "estop"


class ClearEStop(_Cmd):
    type: Literal["clear_estop"] = "clear_estop"


class Ping(_Cmd):
    type: Literal["ping"] = "ping"


CommandBody = Annotated[
    StartDemo
    | StartRollout
    | StartEval
    | StopEval
    | TakeOver
    | HandBack
    | TeleopAction
    | EndEpisode
    | LabelEpisode
    | ResetDone
    | EStop
    | ClearEStop
    | Ping,
    Field(discriminator="type"),
]
command_adapter: TypeAdapter[CommandBody] = TypeAdapter(CommandBody)


class Command(Message):
    """Envelope of one command to a bridge."""

    TOPIC: ClassVar[str] = "cmd"
    MAX_HEADER_BYTES: ClassVar[int] = MAX_COMMAND_HEADER_BYTES

    robot_id: str | None = Field(None, description="Target robot; None for the only one.")
    body: CommandBody


class CommandReply(Message):
    """The bridge's answer to one command: accepted or refused with a reason."""

    TOPIC: ClassVar[str] = "reply"
    MAX_HEADER_BYTES: ClassVar[int] = MAX_COMMAND_HEADER_BYTES

    robot_id: str
    command_seq: int = Field(ge=0, description="seq of the command answered.")
    command_type: str
    ok: bool
    reason: str = ""
    mode: ControlMode
