"""The online learner's gates: no policy before the demo minimum, IL-only warm-up rollouts
before the hybrid acts, and the IL policy's clamped state normalisation."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import zmq

from learner.acting import load_policy
from learner.service.assembly import EpisodeAssembler
from learner.service.ingest import Delivery
from learner.service.routing import route
from learner.service.trainer import OnlineLearner
from tandem.messages import EpisodeKind, Outcome, PolicyWeights
from tandem.settings import load_settings
from tandem.settings.learner_service import LearnerServiceSettings
from tandem.wire import decode
from tests.learner.service.helpers import end, start, step
from tests.polling import wait_for

pytestmark = pytest.mark.timeout(120)
N = 12  # steps per synthetic episode


def _episode(asm: EpisodeAssembler, episode: str, kind=EpisodeKind.ROLLOUT) -> Delivery:
    asm.on_event(*start("r", episode, seq=0, kind=kind))
    for t in range(N):
        asm.on_step(*step("r", episode, t, seq=t, kind=kind))
    msg, frames = end("r", episode, N, seq=1, kind=kind, terminated=True)
    (ep,) = asm.on_event(msg.model_copy(update={"outcome": Outcome.SUCCESS}), frames)
    return Delivery(ep, route(ep, demos_require_success=True, rlif_penalty=None))


def _learner(tmp_path, **learner: object) -> OnlineLearner:
    cfg = {
        "device": "cpu", "obs": "state", "threads": 1, "hidden_dim": 16, "state_actor_layers": 1,
        "critic_layers": 1, "num_q": 2, "batch_size": 8, "min_buffer": 8, "bc_steps": 5,
        "bc_hidden_dim": 16, "bc_layers": 1, "update_freq": 1, "num_critic_updates": 1,
        "buffer_size": 2000, "bridges": ["tcp://127.0.0.1:9"], "state_stack": 2,
        "weights_endpoint": "tcp://127.0.0.1:*", "metrics_endpoint": "tcp://127.0.0.1:*",
        "online_min_demos": 3, "online_warmup_rollouts": 2, "online_warmup_updates": 0,
        **learner,
    }  # fmt: skip
    settings = load_settings(None, data_dir=tmp_path / "data", learner=cfg)
    svc = LearnerServiceSettings(
        min_transitions=8, publish_every_updates=1000, checkpoint_every_s=10,
        max_updates_per_s=1000, refit_min_demo_steps=10_000,
    )  # fmt: skip
    return OnlineLearner(settings, svc)


class Running:
    """The learner's loop on a thread, and a subscriber to the bundles it publishes."""

    def __init__(self, learner: OnlineLearner) -> None:
        self.learner = learner
        learner.start()
        assert learner.outbox is not None
        endpoint = learner.outbox.weights.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint)
        self.thread = threading.Thread(target=learner.run, daemon=True)
        self.thread.start()
        self.asm = EpisodeAssembler()

    def deliver(self, name: str, kind=EpisodeKind.ROLLOUT) -> None:
        self.learner.deliveries.append(_episode(self.asm, name, kind))

    def bundles(self, timeout_ms: int = 200) -> list[tuple[PolicyWeights, bytes]]:
        out = []
        while self.sub.poll(timeout_ms):
            decoded = decode(self.sub.recv_multipart())
            assert isinstance(decoded.msg, PolicyWeights)
            out.append((decoded.msg, bytes(decoded.blob("bundle"))))
        return out

    def metric(self, name: str) -> float | None:
        return self.learner.metrics()[2].get(name)

    def close(self) -> None:
        self.learner.stop_event.set()
        self.thread.join(30)
        self.sub.close(0)


@pytest.fixture
def running(tmp_path):
    made: list[Running] = []

    def make(**learner: object) -> Running:
        made.append(Running(_learner(tmp_path / str(len(made)), **learner)))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_no_policy_is_published_before_the_demo_minimum(running) -> None:
    run = running()
    run.deliver("d0", EpisodeKind.DEMO)
    run.deliver("d1", EpisodeKind.DEMO)
    wait_for(lambda: run.metric("learner/demos") == 2, 20, "two demos counted")
    assert run.bundles(timeout_ms=1000) == [] and run.learner.il is None
    assert run.learner.state == "waiting_for_demos"
    assert run.metric("learner/demos_required") == 3 and run.metric("weights/version") == 0
    run.deliver("d2", EpisodeKind.DEMO)
    wait_for(lambda: run.learner.progress.weights_version >= 1, 30, "the first policy")
    assert run.learner.spec is not None and run.metric("learner/demos") == 3


def test_the_demo_step_minimum_holds_the_first_policy_too(running) -> None:
    run = running(online_min_demos=1, online_min_demo_steps=2 * N)
    run.deliver("d0", EpisodeKind.DEMO)
    wait_for(lambda: run.metric("learner/demo_steps") == N, 20, "the first demo's steps")
    assert run.bundles(timeout_ms=500) == [] and run.learner.state == "waiting_for_demos"
    run.deliver("d1", EpisodeKind.DEMO)
    wait_for(lambda: run.learner.progress.weights_version >= 1, 30, "the first policy")


def test_warm_up_rollouts_use_the_il_policy_alone_then_the_hybrid_acts(running) -> None:
    run = running()
    for k in range(3):
        run.deliver(f"d{k}", EpisodeKind.DEMO)
    wait_for(lambda: run.learner.progress.weights_version >= 1, 30, "the first policy")
    run.deliver("r0")
    wait_for(lambda: run.metric("learner/warmup_rollouts") == 1, 20, "one warm-up rollout")
    run.learner.publish()  # a periodic publish during the warm-up
    warm = run.bundles()
    assert len(warm) == 2 and run.metric("learner/il_only") == 1.0
    obs = np.array([0.3, 1.0, 0.0, 0.0, 0.0], np.float32)
    for msg, blob in warm:
        policy = load_policy(blob)
        assert msg.config["il_only"] and policy.rl is None
        assert all(policy.act(obs, explore=True)[1]["proposal"] == "il" for _ in range(5))
    run.deliver("r1")  # the last warm-up rollout: the hybrid is published at once
    wait_for(lambda: run.learner.progress.weights_version >= 3, 20, "the hybrid policy")
    (msg, blob), *_ = run.bundles()
    policy = load_policy(blob)
    assert not msg.config["il_only"] and policy.rl is not None
    assert run.metric("learner/il_only") == 0.0


def test_the_online_il_policy_clamps_normalised_states(running) -> None:
    run = running(online_min_demos=1, state_norm_clip=3.0)
    run.deliver("d0", EpisodeKind.DEMO)
    wait_for(lambda: run.learner.il is not None, 30, "the IL pre-training")
    il = run.learner.il
    assert il is not None and il.arch["norm_clip"] == 3.0
    far = torch.full((1, il.normalizer.mean.shape[0]), 1e6)
    z = il.normalizer(far)
    assert torch.all(z.abs() <= 3.0 + 1e-6) and torch.all(z == 3.0)


def test_evaluation_episodes_do_not_count_as_warm_up_rollouts(running) -> None:
    run = running(online_min_demos=1, online_warmup_rollouts=1)
    run.deliver("d0", EpisodeKind.DEMO)
    wait_for(lambda: run.learner.progress.weights_version >= 1, 30, "the first policy")
    run.deliver("e0", EpisodeKind.EVALUATION)
    run.deliver("e1", EpisodeKind.EVALUATION)
    wait_for(lambda: run.metric("buffer/online") == 2 * N, 20, "the evaluation episodes")
    assert run.metric("learner/warmup_rollouts") == 0 and run.metric("learner/il_only") == 1.0
    run.deliver("r0")
    wait_for(lambda: run.metric("learner/il_only") == 0.0, 20, "the end of the warm-up")


def test_the_hybrid_waits_for_the_critic_updates_too(running) -> None:
    run = running(online_min_demos=1, online_warmup_rollouts=1, online_warmup_updates=30)
    run.deliver("d0", EpisodeKind.DEMO)
    wait_for(lambda: run.learner.progress.weights_version >= 1, 30, "the first policy")
    run.deliver("r0")
    wait_for(lambda: run.metric("learner/warmup_rollouts") == 1, 20, "the warm-up rollout")
    assert run.metric("learner/il_only") == 1.0 and run.learner.num_updates < 30
    assert run.metric("learner/warmup_updates_required") == 30
    for k in range(1, 4):  # env steps for the UTD budget
        run.deliver(f"r{k}")
    wait_for(lambda: run.metric("learner/il_only") == 0.0, 30, "the critic updates")
    assert run.learner.num_updates >= 30
    msgs = [msg for msg, _ in run.bundles()]
    assert msgs[-1].config["il_only"] is False and any(m.config["il_only"] for m in msgs)
