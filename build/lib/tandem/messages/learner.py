"""Messages the learner publishes: policy-weights announcements and metrics."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field, field_validator

from tandem.messages.base import Message


class PolicyWeights(Message):
    """A versioned policy bundle; the serialized bundle is the frame ``bundle``.

    The bundle is a safetensors blob (never a pickle); ``config`` holds what a
    receiver needs to rebuild the networks before loading the tensors.
    """

    TOPIC: ClassVar[str] = "weights"

    run_id: str
    version: int = Field(ge=0, description="Monotonic bundle version within the run.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Checksum of the bundle frame.")
    method: str
    il_version: int = Field(0, ge=0, description="Version of the imitation policy inside.")
    update_step: int = Field(0, ge=0)
    config: dict[str, Any] = Field(default_factory=dict)


class LearnerMetrics(Message):
    """A flat dict of documented metric names (see docs/metrics.md)."""

    TOPIC: ClassVar[str] = "metrics"

    run_id: str
    update_step: int = Field(ge=0)
    env_steps: int = Field(ge=0)
    metrics: dict[str, float]

    @field_validator("metrics")
    @classmethod
    def _finite_or_nan(cls, metrics: dict[str, float]) -> dict[str, float]:
        # NaN is allowed (a metric not yet defined) but infinities are not.
        bad = [k for k, x in metrics.items() if math.isinf(x)]
        if bad:
            raise ValueError(f"metrics must not be infinite: {bad}")
        return metrics
