"""Settings of the learner: IBRL hyperparameters, compute and endpoints."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["ibrl", "ibrl_soft", "rl", "rlpd", "bc"]
DeviceName = Literal["auto", "cpu", "cuda"]


class LearnerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method = Field("ibrl", description="Algorithm: ibrl, ibrl_soft, rl, rlpd or bc.")
    device: DeviceName = Field("auto", description="Compute device; auto picks CUDA when present.")
    batch_size: int = Field(256, ge=1, description="Minibatch size of every update.")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate of actor, critic and encoder.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    n_step: int = Field(3, ge=1, description="Length of the n-step return.")
    tau: float = Field(0.01, gt=0, le=1, description="Polyak rate of the target networks.")
    bridges: list[str] = Field(
        default_factory=lambda: ["tcp://127.0.0.1:5555"],
        description="ZMQ PUB endpoints of the bridges whose steps the learner consumes.",
    )
    weights_endpoint: str = Field(
        "tcp://127.0.0.1:5561", description="ZMQ PUB endpoint where policy weights are published."
    )
    metrics_endpoint: str = Field(
        "tcp://127.0.0.1:5562", description="ZMQ PUB endpoint where training metrics are published."
    )
