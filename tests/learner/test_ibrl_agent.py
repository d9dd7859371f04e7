"""Agent behaviour on synthetic batches: TD target, Polyak updates, dropout, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from learner.bc import BCPolicy
from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.ibrl import IBRLAgent
from learner.networks import sample_action
from learner.obs import Normalizer, ObsSpec
from tests.learner.helpers import random_batch, tiny_agent, tiny_settings


class FixedCritic(nn.Module):
    """Two heads: Q_h(s, a) = s0 + k_h * a0 with k = (1, 2)."""

    def forward(self, feat: torch.Tensor, prop: object, action: torch.Tensor) -> torch.Tensor:
        return torch.stack([feat[:, 0] + k * action[:, 0] for k in (1.0, 2.0)])


class FixedActor(nn.Module):
    def forward(self, feat: torch.Tensor, prop: object = None) -> torch.Tensor:
        return torch.tanh(feat[:, 1:2])


class FixedIL(nn.Module):
    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.full((obs["state"].shape[0], 1), -0.5)


SPEC1 = ObsSpec(state_dim=2, action_dim=1, raw_state_dim=2)
NEXT = {"state": torch.tensor([[0.3, 0.8], [0.1, -2.0]])}
REWARD = torch.tensor([0.5, 1.0])
DISCOUNT = torch.tensor([0.9801, 0.99])


def _fixed_agent(method: str):
    agent = tiny_agent(SPEC1, method=method, stddev_max=1e-7, stddev_min=1e-7, num_q=2)
    agent.critic_target, agent.actor_target = FixedCritic(), FixedActor()
    if agent.il is not None:
        agent.il = FixedIL()
    return agent


def test_bootstrap_proposal_target_matches_hand_computation() -> None:
    # sample 0: a_rl = tanh(0.8) = 0.66404, Q_rl = min(0.3 + 0.66404, 0.3 + 1.32807) = 0.96404;
    #           a_il = -0.5, Q_il = min(-0.2, -0.7) = -0.7 -> RL; y = 0.5 + 0.9801 * 0.96404
    # sample 1: a_rl = tanh(-2) = -0.96403, Q_rl = min(-0.86403, -1.82806) = -1.82806;
    #           Q_il = min(-0.4, -0.9) = -0.9 -> IL; y = 1 + 0.99 * -0.9 = 0.109
    y, use_il = _fixed_agent("ibrl").bootstrap_target(NEXT, REWARD, DISCOUNT)
    assert use_il.tolist() == [False, True]
    torch.testing.assert_close(y, torch.tensor([1.444852, 0.109]), atol=1e-4, rtol=0)


def test_rl_target_uses_the_actor_proposal_only() -> None:
    y, use_il = _fixed_agent("rl").bootstrap_target(NEXT, REWARD, DISCOUNT)
    assert not use_il.any()
    torch.testing.assert_close(y, torch.tensor([1.444852, 1 - 0.99 * 1.828055]), atol=1e-4, rtol=0)


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_targets_move_by_tau(state_spec: ObsSpec) -> None:
    agent = tiny_agent(state_spec, tau=0.25)
    batch = random_batch(state_spec, 16)
    old_target, old_actor_target = _params(agent.critic_target), _params(agent.actor_target)
    agent.update_critic(batch)
    for old, new, online in zip(
        old_target, agent.critic_target.parameters(), agent.critic.parameters(), strict=True
    ):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * online)
    for old, new in zip(old_actor_target, agent.actor_target.parameters(), strict=True):
        assert torch.equal(old, new)  # the actor target only moves on actor steps
    agent.update_actor(batch)
    for old, new, online in zip(
        old_actor_target, agent.actor_target.parameters(), agent.actor.parameters(), strict=True
    ):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * online)


def test_dropout_off_when_acting_and_on_in_target_actor(state_spec: ObsSpec) -> None:
    agent = tiny_agent(state_spec, method="ibrl", actor_dropout=0.5, num_k=10)
    obs = random_batch(state_spec, 64)["obs"]
    a1, _ = agent.act(obs, explore=False)
    a2, _ = agent.act(obs, explore=False)
    assert torch.equal(a1, a2) and not agent.actor.training
    agent.actor.train()
    assert not torch.equal(agent.actor(agent.encode(obs, False)[0]), a1)
    y1, _ = agent.bootstrap_target(obs, torch.zeros(64), torch.ones(64))
    y2, _ = agent.bootstrap_target(obs, torch.zeros(64), torch.ones(64))
    assert agent.actor_target.training
    # the smoothing noise differs too; check dropout alone with a near-zero noise
    quiet = tiny_agent(
        state_spec, method="ibrl", actor_dropout=0.5, stddev_max=1e-9, stddev_min=1e-9, num_k=10
    )
    assert quiet.il is not None and agent.il is not None
    quiet.il.load_state_dict(agent.il.state_dict())
    quiet.critic_target.load_state_dict(agent.critic_target.state_dict())
    z1, _ = quiet.bootstrap_target(obs, torch.zeros(64), torch.ones(64))
    z2, _ = quiet.bootstrap_target(obs, torch.zeros(64), torch.ones(64))
    assert not torch.allclose(z1, z2)
    no_drop = tiny_agent(
        state_spec, method="rl", actor_dropout=0.5, stddev_max=1e-9, stddev_min=1e-9, num_k=4
    )  # the rl and rlpd baselines run without actor dropout, whatever the setting
    w1, _ = no_drop.bootstrap_target(obs, torch.zeros(64), torch.ones(64))
    w2, _ = no_drop.bootstrap_target(obs, torch.zeros(64), torch.ones(64))
    torch.testing.assert_close(w1, w2)
    assert not torch.equal(y1, y2)


@pytest.mark.parametrize("method", ["rl", "rlpd"])
def test_baselines_have_no_actor_dropout(state_spec: ObsSpec, method: str) -> None:
    agent = tiny_agent(state_spec, method=method, actor_dropout=0.5)
    assert not any(isinstance(m, torch.nn.Dropout) for m in agent.actor.modules())
    ibrl = tiny_agent(state_spec, method="ibrl", actor_dropout=0.5)
    assert any(isinstance(m, torch.nn.Dropout) for m in ibrl.actor.modules())


def test_actor_loss_is_the_min_over_all_critic_heads(state_spec: ObsSpec) -> None:
    agent = tiny_agent(state_spec, method="rl", num_q=5, num_k=2, actor_dropout=0.0)
    batch = random_batch(state_spec, 32)
    feat, prop = agent.encode(batch["obs"], augment=False)
    torch.manual_seed(3)
    mu = agent.actor(feat, prop)
    action = sample_action(mu, agent.stddev(), agent.cfg.stddev_clip)
    expected = -agent.critic(feat, prop, action).min(dim=0).values.mean()
    torch.manual_seed(3)
    metrics = agent._actor_step(feat, prop)
    assert metrics["actor/loss"] == pytest.approx(float(expected.detach()), rel=1e-5)


def test_il_policy_is_frozen_and_in_eval_mode(state_spec: ObsSpec) -> None:
    agent = tiny_agent(state_spec, method="ibrl")
    assert agent.il is not None
    before = _params(agent.il)
    agent.update([random_batch(state_spec, 16, seed=s) for s in range(2)])
    assert not agent.il.training
    assert all(torch.equal(a, b) for a, b in zip(before, agent.il.parameters(), strict=True))


def test_update_metrics_are_finite(state_spec: ObsSpec) -> None:
    agent = tiny_agent(state_spec, method="ibrl_soft")
    metrics = agent.update([random_batch(state_spec, 16, seed=s) for s in range(3)])
    assert agent.num_updates == 3
    for name in ("critic/loss", "critic/q_mean", "actor/loss", "ibrl/bc_selected_frac_target"):
        assert math.isfinite(metrics[name])


@pytest.mark.parametrize("method", ["ibrl", "rlpd"])
def test_checkpoint_round_trip_gives_identical_actions(
    tmp_path, state_spec: ObsSpec, method: str
) -> None:
    agent = tiny_agent(state_spec, method=method)
    for s in range(3):
        agent.update([random_batch(state_spec, 16, seed=s)])
    agent.env_steps = 123
    save_checkpoint(tmp_path / "ck.pt", {"agent": agent.state_dict()})
    torch.manual_seed(99)  # a differently initialised agent
    fresh = tiny_agent(state_spec, method=method)
    fresh.load_state_dict(load_checkpoint(tmp_path / "ck.pt")["agent"])
    obs = random_batch(state_spec, 32, seed=7)["obs"]
    torch.manual_seed(3)  # the critic heads scoring the proposals are a random subset
    a, _ = agent.act(obs, explore=False)
    torch.manual_seed(3)
    b, _ = fresh.act(obs, explore=False)
    assert torch.equal(a, b) and fresh.env_steps == 123 and fresh.num_updates == 3
    # optimiser state came along: one more identical update keeps them identical
    batch = random_batch(state_spec, 16, seed=11)
    torch.manual_seed(5)
    agent.update([batch])
    torch.manual_seed(5)
    fresh.update([batch])
    for p, q in zip(agent.actor.parameters(), fresh.actor.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_pixel_agent_updates_and_acts_on_cpu() -> None:
    spec = ObsSpec(state_dim=4, action_dim=2, cameras=("front", "wrist"), image_shape=(64, 64, 6),
                   raw_state_dim=4, frame_stack=2)  # fmt: skip
    agent = tiny_agent(spec, method="ibrl", vit_dim=16, vit_heads=4, spatial_emb=16, pixel_num_q=2)
    metrics = agent.update([random_batch(spec, 4)])
    assert math.isfinite(metrics["critic/loss"])
    action, info = agent.act(random_batch(spec, 3)["obs"], explore=True)
    assert action.shape == (3, 2) and info["q_il"].shape == (3,)


def test_state_normaliser_uses_demo_statistics_and_clamps() -> None:
    norm = Normalizer(2, clip=10.0)
    norm.fit(np.array([[0.0, 1.0], [2.0, 1.0]], np.float32))  # std of dim 1 floors at 0.01
    out = norm(torch.tensor([[1.0, 1.0], [3.0, 2.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [2.0, 10.0]]))


def test_actor_init_il_starts_the_actor_as_the_il_policy(state_spec: ObsSpec) -> None:
    cfg = tiny_settings(method="ibrl", actor_init="il", actor_dropout=0.5)
    il = BCPolicy(state_spec, hidden=32, layers=2, dropout=0.0)
    states = np.random.default_rng(0).normal(2.0, 3.0, (200, state_spec.state_dim))
    il.normalizer.fit(states)
    agent = IBRLAgent(cfg, state_spec, il, "cpu")
    agent.normalizer.fit(states)
    obs = random_batch(state_spec, 64)["obs"]
    a_rl, _ = agent.act(obs, explore=False, mode="rl")
    torch.testing.assert_close(a_rl, il(obs))
    agent.actor_target.eval()
    torch.testing.assert_close(agent.actor_target(agent.encode(obs, False)[0]), a_rl)


def test_actor_init_il_refuses_an_actor_of_another_shape(state_spec: ObsSpec) -> None:
    cfg = tiny_settings(method="ibrl", actor_init="il", hidden_dim=64)
    il = BCPolicy(state_spec, hidden=32, layers=2, dropout=0.0)
    with pytest.raises(ValueError, match="width and depth"):
        IBRLAgent(cfg, state_spec, il, "cpu")
