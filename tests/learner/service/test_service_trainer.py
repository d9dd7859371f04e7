"""The OnlineLearner in-process (real sockets, synthetic episodes): pixels, refit, resume."""

from __future__ import annotations

import threading
import time

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

SIZE = 64  # the IL ResNet needs at least 2x2 features after its four stages


def _episode(asm, episode: str, n: int, kind=EpisodeKind.ROLLOUT, human=()):
    asm.on_event(*start("r", episode, seq=0, kind=kind))
    for t in range(n):
        rec, _ = step("r", episode, t, seq=t, kind=kind, intervention=t in human)
        img = np.random.default_rng(t).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        asm.on_step(rec, {"front": img})
    msg, _ = end("r", episode, n, seq=1, kind=kind, terminated=True)
    msg = msg.model_copy(update={"outcome": Outcome.SUCCESS})
    (ep,) = asm.on_event(msg, {"front": np.zeros((SIZE, SIZE, 3), np.uint8)})
    return Delivery(ep, route(ep, demos_require_success=True, rlif_penalty=None))


def _learner(tmp_path, resume=False, logger="none") -> OnlineLearner:
    learner = {
        "device": "cpu", "obs": "pixels", "threads": 1, "hidden_dim": 16, "actor_layers": 1,
        "vit_dim": 16, "vit_heads": 2, "spatial_emb": 16, "actor_compress": 8, "batch_size": 8,
        "min_buffer": 8, "bc_steps": 5, "bc_hidden_dim": 16, "bc_resnet_width": 4,
        "update_freq": 1, "num_critic_updates": 1, "buffer_size": 2000, "online_min_demos": 1,
        "bridges": ["tcp://127.0.0.1:9"], "weights_endpoint": "tcp://127.0.0.1:*",
        "metrics_endpoint": "tcp://127.0.0.1:*", "logger": logger,
    }  # fmt: skip
    settings = load_settings(None, data_dir=tmp_path / "data", learner=learner)
    svc = LearnerServiceSettings(
        min_transitions=8, publish_every_updates=5, refit_min_intervention_steps=4,
        refit_steps=3, checkpoint_every_s=0.5, max_updates_per_s=1000, demo_capacity=500,
        intervention_capacity=500,
    )  # fmt: skip
    return OnlineLearner(settings, svc, resume=resume)


def _run_until(learner: OnlineLearner, cond, timeout: float = 60.0) -> None:
    thread = threading.Thread(target=learner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cond(), learner.metrics()[2]
    finally:
        learner.stop_event.set()
        thread.join(30)


@pytest.mark.timeout(180)
def test_pixels_pretrain_train_refit_checkpoint_and_resume(tmp_path):
    learner = _learner(tmp_path)
    learner.start()
    asm = EpisodeAssembler()
    learner.deliveries.append(_episode(asm, "demo", 12, kind=EpisodeKind.DEMO))
    learner.deliveries.append(_episode(asm, "roll", 12, human=range(3, 9)))
    _run_until(learner, lambda: learner.progress.refits >= 1 and learner.num_updates >= 10)
    _, _, m = learner.metrics()
    assert learner.spec is not None and learner.spec.cameras == ("front",)
    assert m["buffer/demo"] == 12 and m["buffer/online"] == 12 and m["buffer/interventions"] == 6
    assert m["weights/il_version"] == 1 and m["weights/version"] >= 2
    updates, version = learner.num_updates, learner.progress.weights_version
    assert (learner.run_dir / "checkpoint.pt").exists()

    again = _learner(tmp_path, resume=True)  # same run directory: restores, nothing re-learned
    again.start()
    try:
        _run_until(again, lambda: again.agent is not None)
    finally:
        again.stop_event.set()
    assert again.num_updates >= updates and again.progress.il_version == 1
    assert again.progress.weights_version > version  # versions are never reused
    assert again.progress.run_id == learner.progress.run_id


@pytest.mark.timeout(120)
def test_demos_recorded_after_pretraining_reach_the_il_policy(tmp_path):
    """Pre-training starts with the first demo; the next demos trigger an IL refit."""
    learner = _learner(tmp_path)
    learner.start()
    asm = EpisodeAssembler()
    thread = threading.Thread(target=learner.run, daemon=True)
    thread.start()
    try:
        learner.deliveries.append(_episode(asm, "first", 12, kind=EpisodeKind.DEMO))
        wait_for(lambda: learner.il is not None, 60, "the IL pre-training")
        assert learner.progress.demo_steps_at_refit == 12 and learner.progress.refits == 0
        learner.deliveries.append(_episode(asm, "second", 12, kind=EpisodeKind.DEMO))
        wait_for(lambda: learner.progress.refits >= 1, 60, "an IL refit for the second demo")
    finally:
        learner.stop_event.set()
        thread.join(30)
    assert learner.progress.demo_steps_at_refit == 24 and learner.progress.il_version == 1
    assert learner.metrics()[2]["hil/new_demo_steps"] == 0


@pytest.mark.timeout(180)
def test_the_online_learner_sends_its_metrics_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    learner = _learner(tmp_path, logger="tensorboard")
    learner.start()
    asm = EpisodeAssembler()
    learner.deliveries.append(_episode(asm, "demo", 12, kind=EpisodeKind.DEMO))
    learner.deliveries.append(_episode(asm, "roll", 12, human=range(3, 9)))
    _run_until(learner, lambda: learner.num_updates >= 10 and learner.progress.weights_version >= 2)
    events = EventAccumulator(str(learner.run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"learner/update_step", "weights/version", "buffer/online", "hil/refits"} <= tags
    versions = [e.value for e in events.Scalars("weights/version")]
    assert versions == sorted(versions) and versions[-1] >= 2
