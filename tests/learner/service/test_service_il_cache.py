"""The online learner's IL proposal cache: computed off-thread from a snapshot while episodes
keep arriving, installed exact, recomputed for every new IL version (pre-training, refit), and
the TD target it gives equals the uncached one."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from learner.replay import il_cache_fn
from learner.service.assembly import EpisodeAssembler
from learner.service.trainer import OnlineLearner
from tandem.messages import EpisodeKind
from tests.learner.service.test_service_il import _episode, _learner, run_learner
from tests.learner.test_speed import SPEC, ring
from tests.polling import wait_for

pytestmark = pytest.mark.timeout(120)


def il(frames: dict[str, np.ndarray]) -> np.ndarray:
    return np.tanh(frames["state"][:, :3] * 0.5)


def add(store, rng: np.random.Generator, value: float | None = None) -> None:
    t = int(rng.integers(5, 30))
    states = rng.normal(size=(t + 1, SPEC.state_dim)).astype(np.float32)
    if value is not None:
        states[:] = value
    store.add_episode({"state": states}, rng.uniform(-1, 1, (t, 3)), rng.random(t), False)


def expected(store) -> tuple[np.ndarray, np.ndarray]:
    frames = np.concatenate([np.arange(s, s + n) for s, n in store.episodes])
    return store.il_action[frames], il({"state": store.obs["state"][frames]})


def test_a_cache_computed_from_a_snapshot_is_exact_after_episodes_arrived_meanwhile() -> None:
    rng = np.random.default_rng(0)
    store = ring(10, capacity=300)
    snapshot, adds = list(store.episodes), store.adds
    cache = store.compute_il_cache(il, snapshot)
    for _ in range(12):  # more than the ring holds: old frames overwritten, old episodes evicted
        add(store, rng)
    store.install_il_cache(il, 1, cache, adds)
    got, want = expected(store)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert store.il_version == 1
    add(store, rng, value=2.0)  # new episodes are cached as they arrive
    start, n = store.episodes[-1]
    np.testing.assert_allclose(store.il_action[start : start + n], np.tanh(1.0), rtol=1e-6)


def test_a_cache_computed_in_a_thread_while_episodes_are_added_is_exact() -> None:
    """The computing thread reads frames the adding thread is overwriting: those episodes are
    computed again at install, so no half-written frame's proposal survives."""
    rng = np.random.default_rng(1)
    store = ring(10, capacity=300)
    snapshot, adds = list(store.episodes), store.adds
    box: dict[str, np.ndarray] = {}

    def slow_il(frames: dict[str, np.ndarray]) -> np.ndarray:
        out = il(frames)
        threading.Event().wait(0.002)  # let the other thread overwrite frames meanwhile
        return out

    def compute() -> None:
        box["cache"] = store.compute_il_cache(slow_il, snapshot)

    worker = threading.Thread(target=compute)
    worker.start()
    added = 0
    while worker.is_alive():
        add(store, rng)
        added += 1
    worker.join()
    assert added > 20  # the ring wrapped while the cache was computed
    store.install_il_cache(il, 1, box["cache"], adds)
    got, want = expected(store)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def cache_of(learner: OnlineLearner, version: int) -> bool:
    data = learner.data
    return (data is not None and learner.il_cache is None and data.online.il_version == version
            and data.demos.il_version == version and data.online.il_action is not None)  # fmt: skip


def cached_batch(learner: OnlineLearner) -> dict[str, torch.Tensor]:
    """A sampled batch; it carries the current IL policy's a_IL(s')."""
    assert learner.data is not None and learner.il is not None
    batch = learner._rl_batch(learner.data.sample_rl(64, np.random.default_rng(5)))
    with torch.no_grad():
        torch.testing.assert_close(batch["next_il_action"], learner.il(batch["next_obs"]))
    return batch


def test_the_online_learner_caches_each_il_version_off_thread(tmp_path) -> None:
    learner = _learner(tmp_path, method="ibrl")

    def body(asm: EpisodeAssembler) -> None:
        learner.deliveries.append(_episode(asm, "demo", EpisodeKind.DEMO))
        wait_for(lambda: learner.il is not None, 30, "the IL pre-training")
        learner.deliveries.append(_episode(asm, "roll-0"))
        wait_for(lambda: cache_of(learner, 0), 30, "the cache of IL v0")
        cached_batch(learner)
        learner.deliveries.append(_episode(asm, "roll-1", human=range(4, 12)))
        wait_for(lambda: learner.progress.refits >= 1, 30, "an IL refit")
        wait_for(lambda: cache_of(learner, 1), 30, "the cache of IL v1")

    run_learner(learner, body)
    assert learner.last_metrics.get("hil/il_cache_seconds", -1) >= 0
    # Stopped (no update moves the weights or draws random numbers meanwhile): the TD target
    # from the refit policy's cache is the one the agent computes without it.
    batch = cached_batch(learner)
    assert learner.agent is not None and learner.agent.il is learner.il
    targets = []
    for cached in (batch["next_il_action"], None):
        torch.manual_seed(3)
        targets.append(learner.agent.bootstrap_target(
            batch["next_obs"], batch["reward"], batch["discount"], cached))  # fmt: skip
    torch.testing.assert_close(targets[0][0], targets[1][0], rtol=0, atol=1e-6)
    assert torch.equal(targets[0][1], targets[1][1])


def test_no_cache_without_il_cache_or_with_sampled_proposals(tmp_path) -> None:
    for over in ({"il_cache": False}, {"il_proposal_samples": 4}):
        learner = _learner(tmp_path / str(over), method="ibrl", **over)

        def body(asm: EpisodeAssembler, learner: OnlineLearner = learner) -> None:
            learner.deliveries.append(_episode(asm, "demo", EpisodeKind.DEMO))
            wait_for(lambda: learner.agent is not None, 30, "the IL pre-training")
            assert learner.il_cache is None and learner.data is not None
            assert "next_il_action" not in learner.data.sample_rl(8, np.random.default_rng(0))

        run_learner(learner, body)


def test_the_cache_function_is_the_policy_on_the_frames() -> None:
    policy = torch.nn.Linear(SPEC.state_dim, 3)
    frames = {"state": np.random.default_rng(2).normal(size=(7, SPEC.state_dim)).astype("f4")}
    got = il_cache_fn(lambda obs: policy(obs["state"]), torch.device("cpu"))(frames)
    with torch.no_grad():
        np.testing.assert_allclose(got, policy(torch.as_tensor(frames["state"])).numpy())
