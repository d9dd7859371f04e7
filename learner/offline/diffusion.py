"""Diffusion behaviour model: a VP-SDE over actions with epsilon prediction.

Schedule: linear beta(t) = beta_0 + t (beta_1 - beta_0), beta_0 = 0.1, beta_1 = 20, t in
[0, 1]. The perturbed action is x_t = alpha_t a + sigma_t z with
alpha_t = exp(-t^2 (beta_1 - beta_0) / 4 - t beta_0 / 2) and sigma_t = sqrt(1 - alpha_t^2),
so alpha_t^2 + sigma_t^2 = 1. The network predicts z (eps) from (x_t, t, state); the score
of the diffused behaviour distribution is -eps / sigma_t.

Shapes: B = batch, A = action dim, S = state feature dim; ``t`` is [B].
"""

from __future__ import annotations

import math

import torch
from torch import nn

BETA_0, BETA_1 = 0.1, 20.0
T_MIN = 1e-3  # training times are drawn from U(T_MIN, 1)


def log_alpha(t: torch.Tensor) -> torch.Tensor:
    """log alpha_t of the linear VP-SDE (alpha_t = marginal mean coefficient)."""
    return -0.25 * t**2 * (BETA_1 - BETA_0) - 0.5 * t * BETA_0


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_t, sigma_t) with alpha_t^2 + sigma_t^2 = 1."""
    alpha = torch.exp(log_alpha(t))
    sigma = torch.sqrt(torch.clamp(-torch.expm1(2.0 * log_alpha(t)), min=1e-12))
    return alpha, sigma


class FourierTime(nn.Module):
    """Gaussian-Fourier time features: sin/cos(2 pi t W), W ~ N(0, scale^2) fixed."""

    w: torch.Tensor

    def __init__(self, dim: int = 64, scale: float = 30.0):
        super().__init__()
        self.register_buffer("w", torch.randn(dim // 2) * scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * t[:, None] * self.w[None, :]
        return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


class ResidualBlock(nn.Module):
    """x + MLP(LayerNorm(Dropout(x))): Dropout -> LayerNorm -> Linear -> Mish -> Linear."""

    def __init__(self, dim: int, expand: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.LayerNorm(dim),
            nn.Linear(dim, dim * expand),
            nn.Mish(),
            nn.Linear(dim * expand, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ScoreNet(nn.Module):
    """eps_theta(x_t, t, state): Fourier time embedding + MLP, then residual MLP blocks."""

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        *,
        hidden: int = 256,
        blocks: int = 3,
        expand: int = 4,
        dropout: float = 0.1,
        time_dim: int = 64,
    ):
        super().__init__()
        self.action_dim = action_dim
        self.arch = {"hidden": hidden, "blocks": blocks, "expand": expand,
                     "dropout": dropout, "time_dim": time_dim}  # fmt: skip
        self.time = nn.Sequential(
            FourierTime(time_dim),
            nn.Linear(time_dim, 2 * time_dim),
            nn.Mish(),
            nn.Linear(2 * time_dim, 2 * time_dim),
        )
        self.inp = nn.Linear(action_dim + state_dim + 2 * time_dim, hidden)
        self.blocks = nn.Sequential(
            *(ResidualBlock(hidden, expand, dropout) for _ in range(blocks))
        )
        self.out = nn.Sequential(nn.Mish(), nn.Linear(hidden, action_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([x, state, self.time(t)], dim=-1))
        return self.out(self.blocks(h))


def behavior_loss(net: ScoreNet, action: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Epsilon-prediction loss: mean over the batch of sum over A of (eps(x_t) - z)^2."""
    t = torch.rand(action.shape[0], device=action.device) * (1 - T_MIN) + T_MIN
    z = torch.randn_like(action)
    alpha, sigma = alpha_sigma(t)
    x_t = alpha[:, None] * action + sigma[:, None] * z
    return ((net(x_t, t, state) - z) ** 2).sum(-1).mean()


def behavior_update(
    net: ScoreNet, optimizer: torch.optim.Optimizer, action: torch.Tensor, state: torch.Tensor
) -> dict[str, float]:
    net.train()
    loss = behavior_loss(net, action, state)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"behavior/loss": float(loss.detach())}


def score(net: ScoreNet, x: torch.Tensor, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """grad_x log p_t(x | state) estimated as -eps / sigma_t."""
    _, sigma = alpha_sigma(t)
    return -net(x, t, state) / sigma[:, None]


@torch.no_grad()
def sample_ddpm(net: ScoreNet, state: torch.Tensor, steps: int) -> torch.Tensor:
    """Ancestral sampling of the reverse VP-SDE (Euler-Maruyama), ``steps`` network calls."""
    b, dim = state.shape[0], net.action_dim
    x = torch.randn(b, dim, device=state.device)
    ts = torch.linspace(1.0, T_MIN, steps + 1, device=state.device)
    for i in range(steps):
        t, dt = ts[i], ts[i] - ts[i + 1]
        beta = BETA_0 + t * (BETA_1 - BETA_0)
        tt = t.expand(b)
        drift = -0.5 * beta * x - beta * score(net, x, tt, state)
        x = x - drift * dt
        if i < steps - 1:
            x = x + torch.sqrt(beta * dt) * torch.randn_like(x)
    return x.clamp(-1, 1)


@torch.no_grad()
def sample_ddim(net: ScoreNet, state: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Deterministic DDIM (probability-flow) sampling with ``steps`` network calls."""
    b, dim = state.shape[0], net.action_dim
    x = torch.randn(b, dim, device=state.device)
    ts = torch.linspace(1.0, T_MIN, steps + 1, device=state.device)
    for i in range(steps):
        alpha, sigma = alpha_sigma(ts[i].expand(b))
        eps = net(x, ts[i].expand(b), state)
        a0 = ((x - sigma[:, None] * eps) / alpha[:, None]).clamp(-1, 1)
        alpha2, sigma2 = alpha_sigma(ts[i + 1].expand(b))
        x = alpha2[:, None] * a0 + sigma2[:, None] * eps
    return x.clamp(-1, 1)
