"""The proposal-selection rule (greedy, soft, rl)."""

from __future__ import annotations

import pytest
import torch

from learner.selection import select_proposal


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
