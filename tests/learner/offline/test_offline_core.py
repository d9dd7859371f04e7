"""The pure cores of the offline stages: IQL's expectile and TD target, the VP-SDE, the
SRPO surrogate's gradient and the diffusion behaviour model's score field."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from learner.offline.diffusion import (
    BETA_0,
    BETA_1,
    ScoreNet,
    alpha_sigma,
    behavior_update,
    log_alpha,
    score,
)
from learner.offline.iql import IQLCritic, expectile_loss
from learner.offline.srpo import q_guidance, srpo_surrogate


def test_expectile_loss_matches_hand_computed_values() -> None:
    diff = torch.tensor([1.0, -2.0, 0.5, -0.5])
    # weights tau for positive diffs, 1 - tau for negative ones, mean of weight * diff^2
    assert float(expectile_loss(diff, 0.7)) == pytest.approx(
        (0.7 + 0.3 * 4 + 0.7 * 0.25 + 0.3 * 0.25) / 4
    )
    assert float(expectile_loss(diff, 0.5)) == pytest.approx(0.5 * (1 + 4 + 0.25 + 0.25) / 4)
    assert float(expectile_loss(torch.tensor([-1.0]), 0.9)) == pytest.approx(0.1)


def test_value_fitted_with_expectile_reaches_the_tau_expectile() -> None:
    torch.manual_seed(0)
    for tau in (0.5, 0.9):
        v = torch.zeros((), requires_grad=True)
        opt = torch.optim.Adam([v], lr=1e-2)
        for _ in range(1500):  # Q in {0, 1} with probability 1/2: the tau-expectile is tau
            q = torch.randint(0, 2, (256,)).float()
            loss = expectile_loss(q - v, tau)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert float(v.detach()) == pytest.approx(tau, abs=0.04)


def test_td_target_bootstraps_through_truncation_but_not_termination() -> None:
    torch.manual_seed(0)
    critic = IQLCritic(3, 2, hidden=8, layers=1, gamma=0.9)
    next_obs = torch.randn(2, 3)
    batch = {"reward": torch.tensor([1.0, 1.0]), "next_obs": next_obs,
             "terminated": torch.tensor([0.0, 1.0])}  # fmt: skip
    target = critic.td_target(batch)
    v_next = critic.value(next_obs).detach()
    assert float(target[0]) == pytest.approx(1.0 + 0.9 * float(v_next[0]))  # truncated/ongoing
    assert float(target[1]) == pytest.approx(1.0)  # terminated


def test_iql_update_moves_the_target_by_polyak_only() -> None:
    torch.manual_seed(0)
    critic = IQLCritic(3, 2, hidden=8, layers=1, tau=0.1)
    before = [p.clone() for p in critic.q_target.parameters()]
    batch = {"obs": torch.randn(16, 3), "action": torch.rand(16, 2) * 2 - 1,
             "reward": torch.rand(16), "next_obs": torch.randn(16, 3),
             "terminated": torch.zeros(16)}  # fmt: skip
    critic.update(batch)
    for old, tgt, online in zip(before, critic.q_target.parameters(), critic.q.parameters(),
                                strict=True):  # fmt: skip
        torch.testing.assert_close(tgt, 0.9 * old + 0.1 * online)


def test_vp_sde_alpha_sigma_and_marginals() -> None:
    t = torch.linspace(0.0, 1.0, 101)
    alpha, sigma = alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t), atol=1e-6, rtol=0)
    a, s = alpha_sigma(torch.tensor([0.02, 1.0]))
    assert float(a[0]) == pytest.approx(0.99701, abs=1e-5)
    assert float(s[0]) == pytest.approx(0.07721, abs=1e-5)
    assert float(a[1]) == pytest.approx(0.00657, abs=1e-5)
    # d log alpha / dt = -beta(t) / 2 (the VP-SDE's drift)
    tt = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(log_alpha(tt).sum(), tt)
    assert float(grad) == pytest.approx(-0.5 * (BETA_0 + 0.3 * (BETA_1 - BETA_0)))


def test_forward_sde_simulation_has_the_closed_form_marginal() -> None:
    """Euler-Maruyama of dx = -beta/2 x dt + sqrt(beta) dW from x0 = 0.8 to t = 0.5."""
    gen = torch.Generator().manual_seed(0)
    x = torch.full((100_000,), 0.8, dtype=torch.float64)
    steps, t_end = 500, 0.5
    dt = t_end / steps
    for i in range(steps):
        beta = BETA_0 + (i + 0.5) * dt * (BETA_1 - BETA_0)
        x = (
            x
            - 0.5 * beta * x * dt
            + math.sqrt(beta * dt) * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        )
    alpha, sigma = alpha_sigma(torch.tensor(t_end, dtype=torch.float64))
    assert float(x.mean()) == pytest.approx(0.8 * float(alpha), abs=0.015)  # 5 SE
    assert float(x.std()) == pytest.approx(float(sigma), abs=0.01)


@pytest.mark.parametrize("weighting", ["vds", "score"])
def test_surrogate_gradient_is_weighted_eps_minus_z_minus_beta_g_through_the_policy(
    weighting: str,
) -> None:
    torch.manual_seed(0)
    policy = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Tanh())
    behavior = ScoreNet(3, 2, hidden=8, blocks=1, expand=2, dropout=0.0).eval()
    state, g = torch.randn(5, 3), torch.randn(5, 2)
    t, z = torch.rand(5) * 0.9 + 0.05, torch.randn(5, 2)
    beta = 0.3
    loss = srpo_surrogate(policy(state), behavior, state, g, beta=beta,
                          weighting=weighting, t=t, z=z)  # type: ignore[arg-type]  # fmt: skip
    params = list(policy.parameters())
    got = torch.autograd.grad(loss, params)
    assert all(p.grad is None for p in behavior.parameters())  # nothing reaches the denoiser
    # by hand: (1/B) sum_i (w_i (eps_hat_i - z_i) - beta g_i)^T d pi(s_i) / d theta
    alpha, sigma = alpha_sigma(t)
    w = sigma**2 if weighting == "vds" else alpha / sigma
    with torch.no_grad():
        action = policy(state)
        eps_hat = behavior(alpha[:, None] * action + sigma[:, None] * z, t, state)
    coef = (w[:, None] * (eps_hat - z) - beta * g) / 5
    names = [n for n, _ in policy.named_parameters()]

    def pi(*flat: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(policy, dict(zip(names, flat, strict=True)), (state,))

    jac = torch.autograd.functional.jacobian(pi, tuple(params))  # each [B, A, *param]
    for grad, j in zip(got, jac, strict=True):
        expected = torch.einsum("ba,ba...->...", coef, j)
        torch.testing.assert_close(grad, expected, atol=1e-6, rtol=1e-5)


def test_q_guidance_is_the_action_gradient_of_the_mean_head() -> None:
    class Quadratic(nn.Module):  # two heads: -(a - 1)^2 and -(a + 1)^2 summed over dims
        def forward(self, obs: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            return torch.stack([-((a - 1) ** 2).sum(-1), -((a + 1) ** 2).sum(-1)])

    a = torch.tensor([[0.5, -0.2]])
    g = q_guidance(Quadratic(), torch.zeros(1, 1), a, normalize=False)
    torch.testing.assert_close(g, -2 * a)  # mean of -2(a-1) and -2(a+1)
    unit = q_guidance(Quadratic(), torch.zeros(1, 1), a, normalize=True)
    assert float(unit.pow(2).mean()) == pytest.approx(1.0)


@pytest.mark.slow
def test_behavior_model_score_points_towards_the_two_modes() -> None:
    torch.manual_seed(0)
    net = ScoreNet(1, 1, hidden=64, blocks=2, expand=2, dropout=0.0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    state = torch.zeros(256, 1)
    for _ in range(1500):
        sign = torch.randint(0, 2, (256, 1)).float() * 2 - 1
        behavior_update(net, opt, sign * 0.5 + 0.03 * torch.randn(256, 1), state)
    net.eval()
    x = torch.tensor([[-0.8], [-0.25], [0.25], [0.8]])
    t = torch.full((4,), 0.05)
    with torch.no_grad():
        field = score(net, x, t, torch.zeros(4, 1)).squeeze(-1)
    # outside the modes it points inwards, between them outwards: towards the nearer mode
    assert field[0] > 0 and field[1] < 0 and field[2] > 0 and field[3] < 0
