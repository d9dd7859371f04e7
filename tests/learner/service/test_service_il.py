"""The online learner's IL policy: dropout, and refits from scratch on all imitation data."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from learner.service.assembly import EpisodeAssembler
from learner.service.ingest import Delivery
from learner.service.routing import route
from learner.service.trainer import OnlineLearner
from tandem.messages import EpisodeKind, Outcome
from tandem.settings import load_settings
from tandem.settings.learner_service import LearnerServiceSettings
from tests.learner.service.helpers import end, start, step
from tests.polling import wait_for

pytestmark = pytest.mark.timeout(120)
N = 12


def _episode(asm: EpisodeAssembler, episode: str, kind=EpisodeKind.ROLLOUT, human=()) -> Delivery:
    asm.on_event(*start("r", episode, seq=0, kind=kind))
    for t in range(N):
        rec, frames = step("r", episode, 5 * t if human else t, seq=t, kind=kind,
                           intervention=t in human)  # fmt: skip
        asm.on_step(rec.model_copy(update={"step": t}), frames)
    msg, frames = end("r", episode, N, seq=1, kind=kind, terminated=True)
    (ep,) = asm.on_event(msg.model_copy(update={"outcome": Outcome.SUCCESS}), frames)
    return Delivery(ep, route(ep, demos_require_success=True, rlif_penalty=None))


def _learner(tmp_path, service: dict | None = None, **learner: object) -> OnlineLearner:
    cfg = {
        "device": "cpu", "obs": "state", "threads": 1, "hidden_dim": 16, "state_actor_layers": 1,
        "critic_layers": 1, "num_q": 2, "batch_size": 8, "min_buffer": 8, "bc_steps": 7,
        "bc_hidden_dim": 16, "bc_layers": 1, "buffer_size": 2000, "online_min_demos": 1,
        "bridges": ["tcp://127.0.0.1:9"], "weights_endpoint": "tcp://127.0.0.1:*",
        "metrics_endpoint": "tcp://127.0.0.1:*", **learner,
    }  # fmt: skip
    settings = load_settings(None, data_dir=tmp_path / "data", learner=cfg)
    svc = LearnerServiceSettings(**{
        "min_transitions": 8, "refit_min_intervention_steps": 4, "refit_steps": 3,
        "refit_min_demo_steps": 10_000, "max_updates_per_s": 1000, **(service or {}),
    })  # fmt: skip
    return OnlineLearner(settings, svc)


def run_learner(learner: OnlineLearner, body: Callable[[EpisodeAssembler], None]) -> None:
    """Start ``learner`` on its own thread, run ``body`` against it, then stop it."""
    learner.start()
    asm = EpisodeAssembler()
    thread = threading.Thread(target=learner.run, daemon=True)
    thread.start()
    try:
        body(asm)
    finally:
        learner.stop_event.set()
        thread.join(30)


def _run_refit(learner: OnlineLearner) -> None:
    def body(asm: EpisodeAssembler) -> None:
        learner.deliveries.append(_episode(asm, "demo", EpisodeKind.DEMO))
        wait_for(lambda: learner.il is not None, 30, "the IL pre-training")
        learner.deliveries.append(_episode(asm, "roll", human=range(4, 12)))
        wait_for(lambda: learner.progress.refits >= 1, 30, "an IL refit")

    run_learner(learner, body)


def test_a_scratch_refit_fits_the_normaliser_on_demos_and_interventions(tmp_path) -> None:
    learner = _learner(tmp_path)
    _run_refit(learner)
    assert learner.il is not None and learner.data is not None
    demo_mean = learner.data.demo_states().mean(0)
    all_mean = learner.data.il_states().mean(0)
    assert len(learner.data.il_states()) > len(learner.data.demo_states()) >= N
    assert not np.allclose(demo_mean, all_mean)  # the human steps are elsewhere
    np.testing.assert_allclose(learner.il.normalizer.mean.numpy(), all_mean, rtol=1e-5)
    assert learner.agent is not None and learner.agent.il is learner.il


def test_a_finetune_refit_keeps_the_demo_normaliser(tmp_path) -> None:
    learner = _learner(tmp_path, online_il_refit="finetune")
    _run_refit(learner)
    assert learner.il is not None and learner.data is not None
    demo_mean = learner.data.demo_states().mean(0)
    np.testing.assert_allclose(learner.il.normalizer.mean.numpy(), demo_mean, rtol=1e-5)


def test_the_online_il_dropout_overrides_bc_dropout(tmp_path) -> None:
    learner = _learner(tmp_path, bc_dropout=0.5, online_bc_dropout=0.0)
    learner.spec = learner._spec_from(_episode(EpisodeAssembler(), "d", EpisodeKind.DEMO)
                                      .routed.demo[0])  # fmt: skip
    assert learner._new_il().arch["dropout"] == 0.0
    learner.cfg = learner.cfg.model_copy(update={"online_bc_dropout": None})
    assert learner._new_il().arch["dropout"] == 0.5


@pytest.mark.parametrize("wait", [0.5, None])
def test_a_short_correction_is_refit_once_it_has_waited(tmp_path, wait: float | None) -> None:
    """Two intervention steps, far fewer than a refit needs: refit_max_wait_s after they
    arrived they start one anyway (None: they keep waiting for more)."""
    service = {"refit_min_intervention_steps": 100, "refit_max_wait_s": wait}
    learner = _learner(tmp_path, service)

    def body(asm: EpisodeAssembler) -> None:
        learner.deliveries.append(_episode(asm, "demo", EpisodeKind.DEMO))
        wait_for(lambda: learner.il is not None, 30, "the IL pre-training")
        learner.deliveries.append(_episode(asm, "roll", human=(6, 7)))
        wait_for(lambda: learner.data is not None and learner.data.intervention_steps == 2, 30,
                 "the two intervention steps")  # fmt: skip
        if wait is None:
            time.sleep(2.0)
            assert learner.progress.refits == 0 and learner.refit is None
        else:
            wait_for(lambda: learner.progress.refits >= 1, 30, "a refit of the short correction")
            assert learner.progress.intervention_steps_at_refit == 2

    run_learner(learner, body)
