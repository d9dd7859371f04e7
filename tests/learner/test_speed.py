"""The speed mechanisms of issue 13 keep the numbers: head-subset scoring, the cached IL
proposal, updates without host syncs, the device mirror of the replay, compiled networks,
and the learner thread of ``tandem train`` that keeps the update-to-data ratio."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import learner.toy_env  # noqa: F401  (registers the env id)
from learner.envs import parse_env
from learner.ibrl import to_floats
from learner.networks import EnsembleCritic, min_of_random_heads, min_q
from learner.obs import ObsSpec
from learner.overlap import UpdateWorker
from learner.replay import Replay, TransitionRing, il_cache_fn
from learner.train import TrainArgs, Trainer, batch_to_torch
from tandem.settings import load_settings
from tests.learner.helpers import random_batch, tiny_agent
from tests.learner.test_ibrl_learning import record

SPEC = ObsSpec(state_dim=6, action_dim=3, raw_state_dim=6)


def ring(episodes: int, seed: int = 0, capacity: int = 400) -> TransitionRing:
    rng = np.random.default_rng(seed)
    r = TransitionRing(capacity, {"state": ((SPEC.state_dim,), "float32")}, 3, 3, 0.99)
    for _ in range(episodes):
        t = int(rng.integers(5, 30))
        obs = {"state": rng.normal(size=(t + 1, SPEC.state_dim)).astype(np.float32)}
        r.add_episode(obs, rng.uniform(-1, 1, (t, 3)), rng.random(t), bool(rng.random() < 0.5))
    return r


def test_scoring_runs_only_the_drawn_heads_and_gives_the_same_min() -> None:
    critic = EnsembleCritic(6, 3, 32, 2, heads=5)
    feat, action = torch.randn(64, 6), torch.rand(64, 3) * 2 - 1
    for seed in range(5):
        torch.manual_seed(seed)
        full = min_of_random_heads(critic(feat, None, action), 2)
        torch.manual_seed(seed)
        subset = min_q(critic, feat, None, action, 2)
        torch.testing.assert_close(subset, full, rtol=0, atol=1e-6)


def test_cached_il_proposal_gives_the_same_td_target() -> None:
    agent = tiny_agent(SPEC, method="ibrl")
    assert agent.il is not None
    agent.il.normalizer.fit(np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32))
    store = ring(12)
    store.set_il_proposal(il_cache_fn(agent.il, torch.device("cpu")))
    batch = batch_to_torch(store.sample(128, np.random.default_rng(2)), torch.device("cpu"))
    assert batch["next_il_action"].shape == (128, 3)
    targets = []
    for cached in (batch["next_il_action"], None):
        torch.manual_seed(3)
        y, use_il = agent.bootstrap_target(
            batch["next_obs"], batch["reward"], batch["discount"], cached
        )
        targets.append((y, use_il))
    (y_cached, il_cached), (y_plain, il_plain) = targets
    assert 0 < il_plain.float().mean() < 1  # both proposals were chosen somewhere
    assert torch.equal(il_cached, il_plain)
    torch.testing.assert_close(y_cached, y_plain, rtol=0, atol=1e-6)


def test_il_cache_follows_the_il_version() -> None:
    calls = []

    def scaled(k: float):
        def il(frames: dict[str, np.ndarray]) -> np.ndarray:
            calls.append(k)
            return np.tanh(k * frames["state"][:, :3])

        return il

    store = ring(6)
    first = scaled(1.0)
    store.set_il_proposal(first, version=0)
    frames = store.num_frames
    np.testing.assert_allclose(store.il_action[:frames], np.tanh(store.obs["state"][:frames, :3]))
    n = len(calls)
    store.set_il_proposal(first, version=0)  # same policy and version: nothing recomputed
    assert len(calls) == n
    store.set_il_proposal(scaled(2.0), version=1)  # a refit: every frame recomputed
    expected = np.tanh(2.0 * store.obs["state"][:frames, :3])
    np.testing.assert_allclose(store.il_action[:frames], expected, rtol=1e-6)
    obs = {"state": np.ones((5, 6), np.float32)}  # a new episode is cached when added
    start = store.ptr
    store.add_episode(obs, np.zeros((4, 3)), np.zeros(4), False)
    np.testing.assert_allclose(store.il_action[start : start + 5], np.tanh(2.0), rtol=1e-6)


def test_device_mirror_samples_the_same_batches() -> None:
    demos, online = ring(5, seed=1), ring(8, seed=2)
    replay = Replay(demos, online, "rlpd", 0.25)
    replay.set_il_proposal(lambda f: np.tanh(f["state"][:, :3]))
    replay.mirror("cpu")
    online.add_episode(  # after mirroring: the mirror follows
        {"state": np.full((4, 6), 7.0, np.float32)}, np.zeros((3, 3)), np.ones(3), True
    )
    for seed in range(3):
        a = batch_to_torch(replay.sample(64, np.random.default_rng(seed)), torch.device("cpu"))
        b = replay.sample_torch(64, np.random.default_rng(seed))
        assert set(a) == set(b) == {"obs", "next_obs", "action", "reward", "discount",
                                    "next_il_action"}  # fmt: skip
        for key in ("action", "reward", "discount", "next_il_action"):
            assert torch.equal(a[key], b[key])
        for key in ("obs", "next_obs"):
            assert torch.equal(a[key]["state"], b[key]["state"])


def test_update_without_syncs_gives_the_same_metrics_and_parameters() -> None:
    batches = [random_batch(SPEC, 32, seed=s) for s in range(2)]
    agents = [tiny_agent(SPEC, method="ibrl", num_critic_updates=2) for _ in range(2)]
    agents[1].load_state_dict(agents[0].state_dict())
    torch.manual_seed(0)
    floats = [agents[0].update(batches) for _ in range(3)][-1]
    torch.manual_seed(0)
    tensors = [agents[1].update_tensors(batches) for _ in range(3)][-1]
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in tensors.values())
    assert to_floats(tensors) == floats
    for (name, p), q in zip(
        agents[0].critic.named_parameters(), agents[1].critic.parameters(), strict=True
    ):
        assert torch.equal(p, q), name


def test_actor_step_computes_no_critic_gradients_and_leaves_the_critic_trainable() -> None:
    agent = tiny_agent(SPEC, method="ibrl")
    agent.critic_opt.zero_grad(set_to_none=True)
    agent.update_actor(random_batch(SPEC, 32))
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.requires_grad for p in agent.critic.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_compiled_networks_give_the_eager_losses_and_parameters() -> None:
    """torch.compile (inductor, on the CPU here) against eager after N updates on fixed
    batches and seed. Tolerance: 1e-4 relative / 1e-5 absolute on losses and parameters
    (fused kernels sum in another order; the random draws are eager's, fallback_random)."""
    import torch._inductor.config as inductor

    batches = [random_batch(SPEC, 32, seed=s) for s in range(2)]
    eager = tiny_agent(SPEC, method="ibrl", num_critic_updates=2)
    compiled = tiny_agent(SPEC, method="ibrl", num_critic_updates=2)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_networks()
    losses: list[list[dict[str, float]]] = [[], []]
    old = inductor.fallback_random
    inductor.fallback_random = True
    try:
        for i, agent in enumerate((eager, compiled)):
            torch.manual_seed(0)
            losses[i] = [agent.update(batches) for _ in range(4)]
    finally:
        inductor.fallback_random = old
    for got, want in zip(losses[1], losses[0], strict=True):
        for key in ("critic/loss", "actor/loss", "critic/q_mean"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-5), key
    for name in ("critic", "actor", "critic_target", "actor_target"):
        want = dict(getattr(eager, name).named_parameters())
        for key, p in getattr(compiled, name).named_parameters():
            plain = key.removeprefix("_orig_mod.")
            torch.testing.assert_close(p, want[plain], rtol=1e-4, atol=1e-5)


def test_bf16_updates_on_the_cpu_track_fp32_and_acting_stays_fp32() -> None:
    """``learner.bf16`` on the CPU: the updates' matmuls run in bf16 (so the numbers move, a
    little) while acting stays fp32 (the same actions as without bf16). Tolerance after 4
    update calls: 5e-2 relative on the losses, 2e-2 absolute on the parameters."""
    batches = [random_batch(SPEC, 32, seed=s) for s in range(2)]
    plain = tiny_agent(SPEC, method="ibrl", num_critic_updates=2)
    half = tiny_agent(SPEC, method="ibrl", num_critic_updates=2, bf16=True)
    half.load_state_dict(plain.state_dict())
    obs = random_batch(SPEC, 16, seed=9)["obs"]
    acts = []
    for agent in (plain, half):
        torch.manual_seed(0)
        acts.append(agent.act(obs, explore=False)[0])
    assert torch.equal(acts[0], acts[1])
    losses: list[list[dict[str, float]]] = [[], []]
    for i, agent in enumerate((plain, half)):
        torch.manual_seed(0)
        losses[i] = [agent.update(batches) for _ in range(4)]
    assert losses[1] != losses[0]  # bf16 did run
    for got, want in zip(losses[1], losses[0], strict=True):
        for key in ("critic/loss", "actor/loss", "critic/q_mean"):
            assert got[key] == pytest.approx(want[key], rel=5e-2, abs=1e-3), key
    for name in ("critic", "actor"):
        want = dict(getattr(plain, name).named_parameters())
        for key, p in getattr(half, name).named_parameters():
            assert p.dtype == torch.float32  # the parameters and Adam stay fp32
            torch.testing.assert_close(p, want[key], rtol=0, atol=2e-2)


def test_worker_keeps_the_update_to_data_ratio() -> None:
    """However slow the updates, the env side is never more than max_lag calls ahead: each
    call here waits until the env side is blocked on a full backlog (or done requesting)."""
    lags: list[int] = []
    gate = threading.Semaphore(0)
    worker = UpdateWorker(gate.acquire, max_lag=2)

    def release() -> None:
        for _ in range(30):
            while worker.pending < 2 and worker.requested < 30:
                time.sleep(0.0005)
            gate.release()

    releaser = threading.Thread(target=release)
    releaser.start()
    for _ in range(30):
        worker.request()
        lags.append(worker.pending)
    worker.close()
    releaser.join()
    assert max(lags) == 2 and worker.max_pending_seen == 2
    assert worker.done == worker.requested == 30


def test_worker_raises_the_learner_threads_error() -> None:
    def update() -> None:
        raise ValueError("boom")

    worker = UpdateWorker(update, max_lag=1)
    worker.request()
    with pytest.raises(RuntimeError, match="learner thread failed"):
        worker.drain()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_overlapped_training_runs_every_update_of_the_sequential_one(tmp_path: Path) -> None:
    record(tmp_path / "demos", 3, 0)
    learner = {
        "obs": "state", "threads": 1, "hidden_dim": 32, "state_actor_layers": 1,
        "critic_layers": 1, "num_q": 2, "batch_size": 32, "update_freq": 2,
        "num_critic_updates": 3, "warmup_episodes": 2, "min_buffer": 32, "bc_steps": 20,
        "bc_hidden_dim": 32, "bc_layers": 1, "eval_every": 300, "eval_episodes": 2,
        "log_every": 100, "checkpoint_every": 100_000, "device": "cpu",
    }  # fmt: skip
    updates = {}
    for overlap in (False, True):
        settings = load_settings(None, learner={**learner, "overlap": overlap})
        out = tmp_path / f"overlap-{overlap}"
        args = TrainArgs(parse_env("gym:tandem/PointReach-v0"), tmp_path / "demos", 300, out)
        rows = Trainer(settings, args).run()
        updates[overlap] = [row["update_step"] for row in rows]
    assert updates[True] == updates[False]
    assert updates[True][-1] > 0
