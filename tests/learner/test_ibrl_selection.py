"""The proposal-selection rule (greedy, soft, rl)."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from learner.networks import advantage_lcb, propose
from learner.obs import ObsSpec
from learner.selection import select_proposal
from tests.learner.helpers import tiny_agent, tiny_settings


def test_greedy_picks_higher_q_and_ties_go_to_rl() -> None:
    a_rl = torch.tensor([[0.1], [0.2], [0.3]])
    a_il = torch.tensor([[-0.1], [-0.2], [-0.3]])
    q_rl = torch.tensor([1.0, 0.0, 0.5])
    q_il = torch.tensor([0.5, 1.0, 0.5])
    action, use_il, q = select_proposal("ibrl", a_rl, q_rl, a_il, q_il)
    assert use_il.tolist() == [False, True, False]
    assert torch.equal(action, torch.tensor([[0.1], [-0.2], [0.3]]))
    assert torch.equal(q, torch.tensor([1.0, 1.0, 0.5]))


def test_rl_mode_ignores_il() -> None:
    a_rl, q_rl = torch.ones(4, 2), torch.zeros(4)
    action, use_il, q = select_proposal("rl", a_rl, q_rl)
    assert torch.equal(action, a_rl) and not use_il.any() and torch.equal(q, q_rl)


def test_ibrl_needs_il_proposal() -> None:
    with pytest.raises(ValueError, match="needs the IL proposal"):
        select_proposal("ibrl", torch.ones(2, 1), torch.zeros(2))


@pytest.mark.parametrize(
    ("q_rl", "q_il", "beta"), [(0.3, 0.4, 10.0), (0.5, 0.2, 10.0), (1.0, 1.0, 3.0)]
)
def test_soft_frequencies_match_softmax(q_rl: float, q_il: float, beta: float) -> None:
    n = 200_000
    g = torch.Generator().manual_seed(0)
    _, use_il, _ = select_proposal(
        "ibrl_soft", torch.zeros(n, 1), torch.full((n,), q_rl), torch.ones(n, 1),
        torch.full((n,), q_il), beta=beta, generator=g,
    )  # fmt: skip
    expected = torch.softmax(torch.tensor([beta * q_rl, beta * q_il]), 0)[1].item()
    # binomial std at n = 2e5 is <= 0.0012; 5 sigma
    assert abs(use_il.float().mean().item() - expected) < 0.006


def test_soft_is_nearly_greedy_at_large_beta() -> None:
    _, use_il, _ = select_proposal(
        "ibrl_soft", torch.zeros(1000, 1), torch.zeros(1000), torch.ones(1000, 1),
        torch.ones(1000), beta=100.0,
    )  # fmt: skip
    assert use_il.all()


class _FixedHeads(torch.nn.Module):
    """A critic whose heads score the RL proposal (first half of the batch) and the IL
    proposal (second half) with fixed values."""

    def __init__(self, q_rl: list[list[float]], q_il: list[list[float]]):
        super().__init__()
        self.q = torch.cat([torch.tensor(q_rl), torch.tensor(q_il)], dim=1)  # [H, 2B]
        self.heads = self.q.shape[0]

    def forward(self, feat, prop, action, heads=None):
        return self.q if heads is None else self.q.index_select(0, heads)


def test_advantage_lcb_is_mean_minus_kappa_std_of_the_head_differences() -> None:
    q_rl = torch.tensor([[1.0, 0.5], [0.8, 0.5], [0.6, 0.5]])
    q_il = torch.tensor([[0.5, 0.5], [0.5, 0.2], [0.5, 0.8]])
    # differences per head: [0.5, 0.3, 0.1] and [0.0, 0.3, -0.3]
    lcb = advantage_lcb(q_rl, q_il, 1.0)
    assert torch.allclose(lcb, torch.tensor([0.3 - 0.2, 0.0 - 0.3]))
    assert torch.allclose(advantage_lcb(q_rl, q_il, 0.0), torch.tensor([0.3, 0.0]))


def test_lcb_rule_takes_rl_only_where_the_heads_agree_it_is_better() -> None:
    # sample 0: both heads prefer RL by 0.2; sample 1: RL better on average (+0.425) but the
    # heads disagree (+0.8, +0.05); the reference rule's min of the heads prefers RL for both.
    critic = _FixedHeads(q_rl=[[0.6, 1.2], [0.7, 0.6]], q_il=[[0.4, 0.4], [0.5, 0.55]])
    a_rl, a_il = torch.ones(2, 1), -torch.ones(2, 1)
    feat = torch.zeros(2, 3)
    kw = {"obs": {}, "mode": "ibrl", "num_k": 2, "beta": 10.0, "a_il": a_il}
    _, use_il_ref, _, _, _ = propose(critic, None, feat, None, a_rl, **kw)
    action, use_il, q, q_rl, q_il = propose(critic, None, feat, None, a_rl, lcb=1.0, **kw)
    assert use_il_ref.tolist() == [False, False]
    assert use_il.tolist() == [False, True]
    assert torch.equal(action, torch.tensor([[1.0], [-1.0]]))
    # the Q values stay the min over the (here: all) heads, as the TD target needs them
    assert torch.allclose(q_rl, torch.tensor([0.6, 0.6]))
    assert torch.allclose(q_il, torch.tensor([0.4, 0.4]))
    assert torch.allclose(q, torch.tensor([0.6, 0.4]))


def test_a_margin_keeps_the_il_proposal_unless_rl_wins_by_more() -> None:
    # sample 0: RL ahead by 0.2 on both heads; sample 1: ahead by 0.05 on both heads
    critic = _FixedHeads(q_rl=[[0.6, 0.55], [0.6, 0.55]], q_il=[[0.4, 0.5], [0.4, 0.5]])
    a_rl, a_il = torch.ones(2, 1), -torch.ones(2, 1)
    feat = torch.zeros(2, 3)
    kw = {"obs": {}, "mode": "ibrl", "num_k": 2, "beta": 10.0, "a_il": a_il}
    for lcb in (None, 1.0):
        _, plain, _, _, _ = propose(critic, None, feat, None, a_rl, lcb=lcb, **kw)
        _, kept, q, q_rl, q_il = propose(critic, None, feat, None, a_rl, lcb=lcb, margin=0.1, **kw)
        assert plain.tolist() == [False, False]
        assert kept.tolist() == [False, True]
        # the values are the critic's own, without the margin
        assert torch.allclose(q, torch.tensor([0.6, 0.5]))
        assert torch.allclose(q_rl, torch.tensor([0.6, 0.55]))
        assert torch.allclose(q_il, torch.tensor([0.4, 0.5]))


def test_an_untrained_critic_leaves_the_il_proposal_in_charge_under_the_lcb_rule() -> None:
    spec = ObsSpec(state_dim=6, action_dim=3, raw_state_dim=6, state_stack=1)
    obs = {"state": torch.randn(2000, 6, generator=torch.Generator().manual_seed(0))}
    shares = {}
    for lcb in (None, 1.0):
        torch.manual_seed(1)
        agent = tiny_agent(spec, method="ibrl", num_q=5, num_k=2, select_lcb=lcb)
        _, info = agent.act(obs, explore=False)
        shares[lcb] = info["use_il"].float().mean().item()
    # a random critic flips a coin between the proposals; its heads disagree, so the bound
    # keeps the IL policy acting until the critic has learnt something
    assert 0.2 < shares[None] < 0.8
    assert shares[1.0] > 0.9


def test_a_negative_lcb_is_refused() -> None:
    with pytest.raises(ValidationError, match="select_lcb"):
        tiny_settings(select_lcb=-0.5)


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(ValidationError, match="select_margin"):
        tiny_settings(select_margin=-0.1)
