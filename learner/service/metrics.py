"""The learner service's flat metrics dict (names documented in docs/metrics.md).

Plain snapshot types in, the flat dict out: the trainer and the ingest thread
each copy their own figures under their own locks (``OnlineLearner.snapshot``,
``Ingest.snapshot``); this module reads no other object's fields or locks and
imports nothing of the service.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

STATES = [
    "starting",
    "waiting_for_data",
    "waiting_for_demos",
    "pretraining",
    "waiting_for_steps",
    "training",
    "imitation_only",
]

Metrics = dict[str, float | None]


@dataclass(frozen=True)
class IngestSnapshot:
    """The ingest thread's counters at one moment."""

    steps: int
    malformed: int
    errors: int
    backfilled_steps: int
    episodes_routed: int
    episodes_dropped: int
    episodes_malformed: int
    gaps: int
    missing: int
    duplicates: int
    late_steps: int
    open_episodes: int
    il_acting_frac: float | None  # share of recent policy steps where the IL proposal acted


@dataclass(frozen=True)
class DataSnapshot:
    """The replay's figures at one moment, and those at the last refit."""

    sizes: Mapping[str, float]  # buffer/* sizes
    intervention_steps: int
    demo_steps: int
    duplicates: int
    intervention_steps_at_refit: int
    demo_steps_at_refit: int


@dataclass(frozen=True)
class TrainerSnapshot:
    """The trainer's figures at one moment (``OnlineLearner.snapshot``)."""

    state: str
    updates: int
    env_steps: int
    updates_per_s: float
    utd_target: float
    checkpoint_age_s: float
    weights_version: int
    il_version: int
    refits: int
    refit_weights_version: int
    refit_running: bool
    rejected_episodes: int
    last: Mapping[str, float] = field(default_factory=dict)  # of the last update, refit, ...


def collect(
    trainer: TrainerSnapshot,
    data: DataSnapshot | None,
    ingest: IngestSnapshot | None,
    *parts: Mapping[str, float | None],
) -> tuple[int, int, Metrics]:
    """(update step, env steps, flat metrics); ``parts`` are other ready-made metric dicts
    (thread supervision, episode statistics)."""
    out: Metrics = dict(trainer.last)
    out.update(_trainer_metrics(trainer))
    for part in parts:
        out.update(part)
    if data is not None:
        out.update(_data_metrics(data))
    if ingest is not None:
        out.update(_ingest_metrics(ingest))
    return trainer.updates, trainer.env_steps, out


def _trainer_metrics(t: TrainerSnapshot) -> Metrics:
    return {
        "learner/state": float(STATES.index(t.state)),
        "learner/waiting": float(t.state.startswith("waiting")),
        "learner/updates_per_s": t.updates_per_s,
        "learner/update_step": float(t.updates),
        "learner/env_steps": float(t.env_steps),
        "learner/utd": t.updates / t.env_steps if t.env_steps else None,
        "learner/utd_target": t.utd_target,
        "learner/checkpoint_age_s": t.checkpoint_age_s,
        "weights/version": float(t.weights_version),
        "weights/il_version": float(t.il_version),
        "hil/refits": float(t.refits),
        "hil/refit_weights_version": float(t.refit_weights_version),
        "hil/refit_running": float(t.refit_running),
        "learner/rejected_episodes": float(t.rejected_episodes),
    }


def _data_metrics(d: DataSnapshot) -> Metrics:
    out: Metrics = dict(d.sizes)
    out["data/intervention_steps"] = float(d.intervention_steps)
    out["buffer/duplicates"] = float(d.duplicates)
    out["hil/new_intervention_steps"] = float(d.intervention_steps - d.intervention_steps_at_refit)
    out["hil/new_demo_steps"] = float(d.demo_steps - d.demo_steps_at_refit)
    return out


def _ingest_metrics(i: IngestSnapshot) -> Metrics:
    return {
        "ingest/steps": float(i.steps),
        "ingest/malformed": float(i.malformed),
        "ingest/errors": float(i.errors),
        "ingest/backfilled_steps": float(i.backfilled_steps),
        "ingest/episodes_routed": float(i.episodes_routed),
        "ingest/episodes_dropped": float(i.episodes_dropped),
        "ingest/episodes_malformed": float(i.episodes_malformed),
        "ingest/gaps": float(i.gaps),
        "ingest/missing": float(i.missing),
        "ingest/duplicates": float(i.duplicates),
        "ingest/late_steps": float(i.late_steps),
        "ingest/open_episodes": float(i.open_episodes),
        "ibrl/bc_selected_frac": i.il_acting_frac,
    }
