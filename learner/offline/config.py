"""Settings of ``tandem train-offline`` (one validated model; every field is a flag)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OfflineMethod = Literal["srpo", "iql", "bc"]


class OfflineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: OfflineMethod = Field("srpo", description="srpo, iql (IQL + AWR) or bc.")
    batch_size: int = Field(256, ge=1, description="Minibatch size of every stage.")
    hidden: int = Field(256, ge=1, description="Width of the critic, value and policy MLPs.")
    layers: int = Field(2, ge=1, description="Hidden layers of the critic, value and policy.")
    lr: float = Field(3e-4, gt=0, description="Adam learning rate of the critic and behaviour.")
    policy_lr: float | None = Field(
        None, gt=0, description="Adam learning rate of the policy stage; None = lr."
    )
    # stage 1: IQL critic
    critic_steps: int = Field(20_000, ge=0, description="Gradient steps of the IQL critic.")
    expectile: float = Field(0.7, gt=0, lt=1, description="IQL expectile tau of V.")
    gamma: float = Field(0.99, gt=0, le=1, description="Discount factor.")
    target_tau: float = Field(0.005, gt=0, le=1, description="Polyak rate of the target Q.")
    reward_scale: float = Field(1.0, gt=0, description="Rewards are multiplied by this.")
    # stage 2: diffusion behaviour model
    behavior_steps: int = Field(20_000, ge=0, description="Gradient steps of the behaviour model.")
    behavior_hidden: int = Field(256, ge=1, description="Width of the residual denoiser.")
    behavior_blocks: int = Field(3, ge=1, description="Residual blocks of the denoiser.")
    behavior_expand: int = Field(4, ge=1, description="Hidden expansion inside each block.")
    behavior_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in each block.")
    # stage 3: policy (srpo extraction, iql AWR, or bc)
    policy_steps: int = Field(10_000, ge=0, description="Gradient steps of the policy.")
    beta: float = Field(0.1, ge=0, description="SRPO: weight of the Q gradient (greedier).")
    weighting: Literal["vds", "score"] = Field(
        "vds", description="SRPO score weighting: vds (sigma^2, mean-seeking) or score "
        "(alpha/sigma, mode-seeking)."
    )  # fmt: skip
    normalize_q: bool = Field(
        True, description="SRPO: scale each Q gradient to unit RMS (sparse rewards)."
    )
    awr_temperature: float = Field(3.0, gt=0, description="IQL/AWR: weights exp(temp * A).")
    # run
    checkpoint_every: int = Field(2_000, ge=1, description="Steps between stage checkpoints.")
    eval_episodes: int = Field(20, ge=0, description="Evaluation episodes at the end.")
    time_limit: int | None = Field(50, ge=1, description="Evaluation episode length limit.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None = default.")
