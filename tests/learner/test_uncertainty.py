"""The per-step uncertainty signals (learner.uncertainty) and what the bundle policy reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from learner.acting import BundlePolicy, read_bundle
from learner.bundle import make_bundle
from learner.networks import EnsembleCritic, StateActor
from learner.obs import ObsSpec
from learner.uncertainty import (
    action_gap,
    all_signals,
    ensemble_disagreement,
    head_std,
    il_spread,
    mc_dropout,
    q_gap,
)
from tests.learner.helpers import tiny_agent

SPEC = ObsSpec(state_dim=5, action_dim=3, raw_state_dim=5)


def test_identical_heads_disagree_by_zero_and_spread_heads_by_their_std() -> None:
    critic = EnsembleCritic(5, 3, hidden=16, layers=2, heads=4)
    with torch.no_grad():
        for layer in [*critic.hidden, critic.out]:
            layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
            layer.bias.copy_(layer.bias[:1].expand_as(layer.bias))
    feat, action = torch.randn(6, 5), torch.rand(6, 3) * 2 - 1
    assert torch.equal(ensemble_disagreement(critic, feat, None, action), torch.zeros(6))
    q = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # two heads, two samples
    torch.testing.assert_close(head_std(q), torch.tensor([1.0, 0.0]))


def test_head_spread_grows_with_the_spread_of_the_heads() -> None:
    base = torch.randn(5, 8)
    values = [float(head_std(base * scale).mean()) for scale in (0.1, 1.0, 10.0)]
    assert values[0] < values[1] < values[2]
    assert values[2] == pytest.approx(100 * values[0], rel=1e-4)
    with pytest.raises(ValueError, match=r"q_heads must be \[H, B\]"):
        head_std(torch.zeros(3))


def test_gaps_are_zero_for_agreeing_proposals_and_measure_their_distance() -> None:
    a = torch.rand(4, 3)
    assert torch.equal(action_gap(a, a), torch.zeros(4))
    torch.testing.assert_close(action_gap(a, a + 0.5), torch.full((4,), 0.5))
    torch.testing.assert_close(q_gap(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.0])),
                               torch.tensor([0.5, 0.0]))  # fmt: skip


def test_mc_dropout_is_zero_without_dropout_and_grows_with_the_rate() -> None:
    feat = torch.randn(16, 5)
    plain = StateActor(5, 3, hidden=32, layers=2, dropout=0.0).eval()
    assert torch.equal(mc_dropout(plain, feat, None), torch.zeros(16))
    spreads = []
    for rate in (0.1, 0.5):
        torch.manual_seed(0)
        actor = StateActor(5, 3, hidden=32, layers=2, dropout=rate).eval()
        spreads.append(float(mc_dropout(actor, feat, None, samples=32).mean()))
        assert not actor.training  # put back in eval mode
    assert 0 < spreads[0] < spreads[1]
    with pytest.raises(ValueError, match="at least 2 samples"):
        mc_dropout(plain, feat, None, samples=1)


def test_mc_dropout_with_its_own_generator_leaves_acting_random_numbers_alone() -> None:
    actor = StateActor(5, 3, hidden=32, layers=2, dropout=0.5).eval()
    feat = torch.randn(2, 5)
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    first = mc_dropout(actor, feat, None, rng=torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)  # the global stream did not move
    again = mc_dropout(actor, feat, None, rng=torch.Generator().manual_seed(0))
    assert torch.equal(first, again)  # reproducible from the generator's seed


class _Spread(nn.Module):
    """An IL kind with a spread (as a Gaussian policy would expose): fixed std 0.2."""

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.zeros(obs["state"].shape[0], 3)

    def spread(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.full((obs["state"].shape[0],), 0.2)


def test_an_il_kind_that_exposes_a_spread_plugs_in() -> None:
    obs = {"state": torch.zeros(4, 5)}
    torch.testing.assert_close(il_spread(_Spread(), obs), torch.full((4,), 0.2))
    assert il_spread(nn.Linear(5, 3), obs) is None
    assert il_spread(None, obs) is None


def _bundle_policy(il_only: bool = False) -> BundlePolicy:
    torch.manual_seed(0)
    agent = tiny_agent(SPEC, method="ibrl", actor_dropout=0.5)
    blob, _ = make_bundle(agent.cfg, SPEC, agent=agent, il=agent.il, il_only=il_only)
    tensors, config = read_bundle(blob)
    return BundlePolicy(tensors, config)


def test_the_bundle_policy_reports_its_uncertainty_per_step_without_changing_its_action() -> None:
    policy = _bundle_policy()
    obs = {"state": np.linspace(-1, 1, 5).astype(np.float32)}
    torch.manual_seed(1)
    action, info = policy.act(obs, explore=False)
    assert info["uncertainty"] is not None and info["uncertainty"] > 0
    policy.reset()
    torch.manual_seed(1)
    batch = {"state": torch.as_tensor(obs["state"])[None]}
    expected, *_ = policy.act_batch(batch, explore=False)
    np.testing.assert_allclose(action, expected[0].numpy(), atol=1e-6)
    p = policy.propose_batch(batch, explore=False)
    signals = all_signals(policy.rl, p)  # type: ignore[arg-type]
    assert set(signals) == {"q_std", "q_gap", "action_gap", "mc_dropout", "il_spread"}
    assert signals["il_spread"] is None  # today's MSE policy has no spread
    assert all(v is not None and v.shape == (1,) for k, v in signals.items() if k != "il_spread")


def test_an_il_only_bundle_without_a_spread_reports_none() -> None:
    policy = _bundle_policy(il_only=True)
    _, info = policy.act({"state": np.zeros(5, np.float32)}, explore=False)
    assert info["uncertainty"] is None
