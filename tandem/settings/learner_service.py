"""Settings of the online learner service (``tandem learner``): section ``learner_service``.

TOML table ``[learner_service]``; environment ``TANDEM_LEARNER_SERVICE__<FIELD>``.
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LearnerServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Path | None = Field(
        None, description="Run directory (checkpoints, ingest log); default <data_dir>/runs/learner"
    )
    recorder_store: Path | None = Field(
        None,
        description="Episode store a running recorder writes every bridge step to (tandem up: "
        "the server's <data_dir>/episodes). The learner resumes and backfills from it and, "
        "with ingest_log auto, writes no log of its own. None: no recorder is assumed; "
        "<data_dir>/episodes is still read on resume and backfill.",
    )
    ingest_log: Literal["auto", "on", "off"] = Field(
        "auto",
        description="The learner's own log of every ingested step (<run_dir>/ingest), read on "
        "resume. auto: off when recorder_store is set (one write per step), on otherwise.",
    )
    demos_dir: Path | None = Field(
        None, description="Recorded demonstrations to start from; default <data_dir>/episodes."
    )
    demos_require_success: bool = Field(
        True, description="Use only demonstrations that ended in success as imitation data."
    )
    pretrain_steps: int | None = Field(
        None,
        ge=0,
        description="IL pre-training updates without a checkpoint; None: learner.bc_steps",
    )
    utd: float | None = Field(
        None,
        gt=0,
        description="Critic updates per received env step; None = learner.num_critic_updates / "
        "learner.update_freq (the reference schedule).",
    )
    max_updates_per_s: float = Field(
        50.0, gt=0, description="Cap on RL updates per second, whatever the UTD allows."
    )
    min_transitions: int = Field(
        200, ge=1, description="RL training waits until the buffers hold this many transitions."
    )
    publish_every_updates: int = Field(
        100, ge=1, description="Publish the policy bundle every K RL updates."
    )
    refit_min_intervention_steps: int = Field(
        50, ge=1, description="New intervention steps that trigger an HG-DAgger IL refit."
    )
    refit_max_wait_s: float | None = Field(
        60.0,
        gt=0,
        description="Intervention steps fewer than refit_min_intervention_steps still start a "
        "refit once the first of them has waited this long (seconds), so that a short "
        "correction is learned without waiting for more; None: only the step count does.",
    )
    refit_min_demo_steps: int = Field(
        10,
        ge=1,
        description="New demonstration steps (recorded after the IL pre-training) that trigger "
        "an IL refit, so the IL policy learns from every demo, not only the first ones.",
    )
    refit_steps: int = Field(
        500, ge=1, description="Fine-tuning updates of the IL policy in each refit."
    )
    rlif_penalty: float | None = Field(
        None,
        description="RLIF: reward added to the step before each takeover (e.g. -1); None is off.",
    )
    label_grace_s: float = Field(
        10.0,
        ge=0,
        description="A finished episode waits this long (or until its robot starts the next "
        "one) for a relabel, e.g. discard, before its data is used.",
    )
    checkpoint_every_s: float = Field(
        10.0,
        gt=0,
        le=10.0,
        description="Seconds between periodic checkpoints of the networks while they change "
        "(at most 10: a crash loses at most this much training); also on SIGTERM.",
    )
    metrics_period_s: float = Field(
        0.5, gt=0, le=1.0, description="Seconds between published metrics messages."
    )
    ingest_flush_s: float = Field(
        0.2, gt=0, description="Seconds between flushes of the learner's own ingest log."
    )
    rolling_episodes: int = Field(
        20, ge=1, description="Window (episodes) of the rolling success rate and return."
    )
    demo_capacity: int = Field(
        100_000, ge=2, description="Frames of demonstration data kept (never evicted)."
    )
    intervention_capacity: int = Field(
        50_000, ge=2, description="Frames of intervention (HG-DAgger) data; oldest evicted."
    )
    profile: str | None = Field(
        None, description="Learner-core network profile (e.g. cpu); None picks by device."
    )

    @property
    def keeps_ingest_log(self) -> bool:
        """Whether the learner writes its own ingest log (see ``ingest_log``)."""
        if self.ingest_log == "auto":
            return self.recorder_store is None
        return self.ingest_log == "on"
