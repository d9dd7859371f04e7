"""The learner service's flat metrics dict (names documented in docs/learner_service.md)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from learner.service.trainer import OnlineLearner

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


def collect(learner: OnlineLearner) -> tuple[int, int, dict[str, float | None]]:
    """Snapshot every metric; safe to call from the outbox thread at any time."""
    out: dict[str, float | None] = {}
    with learner._metrics_lock:
        out.update(learner.last_metrics)
    p = learner.progress
    env_steps, updates = learner.env_steps, learner.num_updates
    out.update(
        {
            "learner/state": float(STATES.index(learner.state)),
            "learner/waiting": float(learner.state.startswith("waiting")),
            "learner/updates_per_s": learner.update_rate.rate(),
            "learner/update_step": float(updates),
            "learner/env_steps": float(env_steps),
            "learner/utd": updates / env_steps if env_steps else None,
            "learner/utd_target": learner.utd_target,
            "learner/checkpoint_age_s": time.monotonic() - learner.last_checkpoint,
            "weights/version": float(p.weights_version),
            "weights/il_version": float(p.il_version),
            "hil/refits": float(p.refits),
            "hil/refit_weights_version": float(p.refit_weights_version),
            "hil/refit_running": float(learner.refit is not None and not learner.refit.done),
            "learner/rejected_episodes": float(learner.rejected_episodes),
        }
    )
    out.update(learner.supervisor.metrics())
    if learner.data is not None:
        out.update(learner.data.sizes())
        out["data/intervention_steps"] = float(learner.data.intervention_steps)
        out["buffer/duplicates"] = float(learner.data.duplicates)
        pending = learner.data.intervention_steps - p.intervention_steps_at_refit
        out["hil/new_intervention_steps"] = float(pending)
        out["hil/new_demo_steps"] = float(len(learner.data.demos) - p.demo_steps_at_refit)
    out.update(learner.episode_stats.metrics())
    if learner.ingest is not None:
        out.update(_ingest_metrics(learner))
    return updates, env_steps, out


def _ingest_metrics(learner: OnlineLearner) -> dict[str, float | None]:
    ingest = learner.ingest
    assert ingest is not None
    with ingest.lock:
        totals = ingest.seq.totals()
        c = ingest.counters
        acting = list(c.acting_il)
        out: dict[str, float | None] = {
            "ingest/steps": float(c.steps),
            "ingest/malformed": float(c.malformed),
            "ingest/errors": float(c.errors),
            "ingest/backfilled_steps": float(c.backfilled_steps),
            "ingest/episodes_routed": float(c.episodes_routed),
            "ingest/episodes_dropped": float(c.episodes_dropped),
            "ingest/episodes_malformed": float(c.episodes_malformed),
        }
    stats = ingest.assembler.stats
    out.update(
        {
            "ingest/gaps": float(totals.gaps),
            "ingest/missing": float(totals.missing),
            "ingest/duplicates": float(totals.duplicates),
            "ingest/late_steps": float(stats.late_steps),
            "ingest/open_episodes": float(len(ingest.assembler.open)),
            "ibrl/bc_selected_frac": sum(acting) / len(acting) if acting else None,
        }
    )
    return out
