"""Stage 3: SRPO policy extraction (score-regularised policy optimisation).

A deterministic tanh policy pi(s) is pushed up the critic's action gradient and held near
the behaviour distribution by the diffusion model's score, without back-propagating through
the diffusion network and without sampling it. Per step: t ~ U(0.02, 0.98), z ~ N(0, I),
a_t = alpha_t pi(s) + sigma_t z, eps_hat = eps_psi(a_t, t, s) (no gradient), and

    loss = mean[ w(t) <eps_hat - z, pi(s)> - beta <g, pi(s)> ],  g = grad_a Q(s, a)|a=pi(s)

whose gradient in the policy parameters is (w (eps_hat - z) - beta g) dpi/dtheta.
Subtracting z leaves the expected gradient unchanged (E z = 0) and cuts its variance.

Weightings: ``vds`` w = sigma_t^2 (the official default; large t dominates, the diffused
behaviour is unimodal there, so with little Q pull the policy goes to the data mean) and
``score`` w = alpha_t / sigma_t (dominated by small t: mode seeking on multimodal data).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from learner.offline.diffusion import ScoreNet, alpha_sigma

Weighting = Literal["vds", "score"]
T_RANGE = (0.02, 0.98)


def weight_of(weighting: Weighting, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return sigma**2 if weighting == "vds" else alpha / sigma


def q_guidance(
    q_fn: nn.Module, obs: torch.Tensor, action: torch.Tensor, *, normalize: bool
) -> torch.Tensor:
    """g = grad_a of the mean of the Q heads at the detached action [B, A]. ``normalize``
    scales each row to unit RMS (useful with sparse rewards, whose Q gradients are small)."""
    a = action.detach().requires_grad_(True)
    with torch.enable_grad():
        q = q_fn(obs, a).mean(dim=0).sum()
        (g,) = torch.autograd.grad(q, a)
    if normalize:
        g = g / g.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-8)
    return g


def srpo_surrogate(
    action: torch.Tensor,
    behavior: ScoreNet,
    state: torch.Tensor,
    guidance: torch.Tensor,
    *,
    beta: float,
    weighting: Weighting = "vds",
    t: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
) -> torch.Tensor:
    """The surrogate loss of ``action`` = pi(s) [B, A] (with its graph): only ``action``
    carries gradient; eps_hat and ``guidance`` are constants."""
    b = action.shape[0]
    if t is None:
        t = torch.rand(b, device=action.device) * (T_RANGE[1] - T_RANGE[0]) + T_RANGE[0]
    if z is None:
        z = torch.randn_like(action)
    alpha, sigma = alpha_sigma(t)
    with torch.no_grad():
        a_t = alpha[:, None] * action.detach() + sigma[:, None] * z
        eps_hat = behavior(a_t, t, state)
    w = weight_of(weighting, alpha, sigma)[:, None]
    per_sample = (w * (eps_hat - z) * action).sum(-1) - beta * (guidance * action).sum(-1)
    return per_sample.mean()


def srpo_update(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    behavior: ScoreNet,
    q_fn: nn.Module,
    batch: dict[str, torch.Tensor | dict[str, torch.Tensor]],
    *,
    beta: float,
    weighting: Weighting,
    normalize_q: bool,
) -> dict[str, float]:
    """One extraction step. ``batch``: ``raw_obs`` (the policy's input dict) and ``obs``
    (normalised states [B, S], the critic's and behaviour model's input)."""
    obs = batch["obs"]
    assert isinstance(obs, torch.Tensor)
    behavior.eval()
    action = policy(batch["raw_obs"])
    g = q_guidance(q_fn, obs, action, normalize=normalize_q)
    loss = srpo_surrogate(action, behavior, obs, g, beta=beta, weighting=weighting)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"srpo/loss": float(loss.detach()), "srpo/q_grad_norm": float(g.norm(dim=-1).mean())}
