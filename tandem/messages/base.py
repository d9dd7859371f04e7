"""Base of every message that crosses a process boundary.

Every message carries ``v`` (schema version), ``seq`` (monotonic per sender and
topic), ``epoch`` (a random id of the sender's seq counter, drawn once per
sender process: a new epoch is how a receiver recognises a restart, see
``tandem.streams``), ``t_mono`` (the sender's monotonic clock, seconds) and
``t_wall`` (Unix time, seconds). Binary payloads travel as extra ZMQ frames
described by ``frames``; the wire codec (``tandem.wire``) fills that list in.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
LEGACY_EPOCH = ""  # the epoch of a sender that predates epochs (field absent)
ACTION_DIM = 7
MAX_FRAME_NDIM = 8

FrameEncoding = Literal["raw", "jpeg", "bytes"]
DType = Literal[
    "bool", "uint8", "int8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64"
]


class FrameSpec(BaseModel):
    """Describes one binary frame that follows the header.

    ``raw`` frames are C-ordered arrays of ``dtype`` and ``shape``; ``jpeg``
    frames decode to uint8 images of ``shape`` (H, W, 3); ``bytes`` frames are
    opaque blobs (for example serialized weights).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    encoding: FrameEncoding
    nbytes: int = Field(ge=0)
    dtype: DType | None = None
    shape: list[int] | None = Field(None, max_length=MAX_FRAME_NDIM)

    @field_validator("shape")
    @classmethod
    def _non_negative(cls, shape: list[int] | None) -> list[int] | None:
        if shape is not None and any(dim < 0 for dim in shape):
            raise ValueError(f"shape dimensions must be non-negative, got {shape}")
        return shape


class Message(BaseModel):
    """Fields shared by every boundary message; subclasses set ``TOPIC``."""

    model_config = ConfigDict(extra="forbid")
    TOPIC: ClassVar[str]

    v: int = Field(SCHEMA_VERSION, description="Schema version.")
    seq: int = Field(0, ge=0, description="Per-sender, per-topic monotonic sequence number.")
    epoch: str = Field(
        LEGACY_EPOCH,
        max_length=32,
        pattern=r"^[0-9a-f]*$",
        description="Random id (hex) of the sender's seq counter, one per sender process; "
        "'' from a sender that predates epochs.",
    )
    t_mono: float = Field(default_factory=time.monotonic, description="Sender monotonic time, s.")
    t_wall: float = Field(default_factory=time.time, description="Sender wall-clock time, s.")
    frames: list[FrameSpec] = Field(default_factory=list, description="Binary frames after header.")


def new_epoch() -> str:
    """A fresh random epoch (128 bits, hex)."""
    return uuid.uuid4().hex


class Sequencer:
    """Hands out the per-topic ``seq`` numbers of one sender, under one random ``epoch``.

    A sender makes one Sequencer for its life, so the epoch is stable for the
    process and new after a restart. A receiver that tracks the stream
    (``tandem.streams.SeqTracker``) needs both: stamp them with ``stamp``.
    """

    def __init__(self, start: int = 0) -> None:
        self._counters: dict[str, itertools.count[int]] = {}
        self._start = start
        self.epoch = new_epoch()

    def stamp(self, msg: Message) -> Message:
        """Set ``msg.seq`` (next of its topic) and ``msg.epoch``; returns ``msg``."""
        msg.seq = self.next(msg.TOPIC)
        msg.epoch = self.epoch
        return msg

    def next(self, topic: str) -> int:
        counter = self._counters.setdefault(topic, itertools.count(self._start))
        return next(counter)


class ControlMode(StrEnum):
    IDLE = "idle"
    TELEOP = "teleop"
    ROLLOUT = "rollout"
    INTERVENTION = "intervention"
    AWAIT_RESET = "await_reset"
    ESTOP = "estop"


class EpisodeKind(StrEnum):
    """demo: a human drives; rollout: the policy explores, a human may take over;
    evaluation: the policy acts deterministically, a take-over makes it a failure."""

    DEMO = "demo"
    ROLLOUT = "rollout"
    EVALUATION = "evaluation"


class EpisodeResult(StrEnum):
    """How a policy episode (rollout or evaluation) ended, for the honest success figures."""

    AUTONOMOUS_SUCCESS = "autonomous_success"  # succeeded with zero human steps
    ASSISTED_SUCCESS = "assisted_success"  # succeeded after a human drove part of it
    FAILURE = "failure"


def episode_result(kind: EpisodeKind, success: bool, human_steps: int) -> EpisodeResult | None:
    """Classify a policy episode; None for a demo (a human's episode, not the policy's).

    An evaluation episode has no human by definition: one with human steps is a failure.
    """
    if kind == EpisodeKind.DEMO:
        return None
    if not success:
        return EpisodeResult.FAILURE
    if human_steps == 0:
        return EpisodeResult.AUTONOMOUS_SUCCESS
    if kind == EpisodeKind.EVALUATION:
        return EpisodeResult.FAILURE
    return EpisodeResult.ASSISTED_SUCCESS


class ActionSource(StrEnum):
    POLICY = "policy"
    HUMAN = "human"
    HOLD = "hold"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DISCARD = "discard"


def finite_vector(
    values: list[float], *, length: int | None = None, what: str = "vector"
) -> list[float]:
    """Check that ``values`` are finite floats (and of ``length`` when given)."""
    if length is not None and len(values) != length:
        raise ValueError(f"{what} must have {length} numbers, got {len(values)}")
    bad = [i for i, x in enumerate(values) if not math.isfinite(x)]
    if bad:
        raise ValueError(f"{what} has non-finite values at indices {bad}")
    return values
