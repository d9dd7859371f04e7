"""Stage 1: the IQL critic (twin Q + V, expectile regression), and IQL's own policy by
advantage-weighted regression (``--method iql``).

V regresses the tau-expectile of min(Q'_1, Q'_2)(s, a) over dataset actions; each Q head
regresses r + gamma (1 - terminated) V(s'). Only termination zeroes the bootstrap: a
time-limit truncation still bootstraps from V(s'). The target Q is a Polyak average.

Batches are dicts of tensors: ``obs`` [B, S] (already normalised), ``action`` [B, A],
``reward`` [B], ``next_obs`` [B, S], ``terminated`` [B] float.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from learner.networks import mlp, soft_update

Batch = dict[str, torch.Tensor]


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """mean(|tau - 1(diff < 0)| * diff^2); diff = Q - V (positive: V is below Q)."""
    weight = torch.where(diff < 0, 1.0 - tau, tau)
    return (weight * diff**2).mean()


class TwinQ(nn.Module):
    """Two MLP Q heads on concat(state, action) -> [2, B]."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int, layers: int):
        super().__init__()
        self.qs = nn.ModuleList(mlp(state_dim + action_dim, hidden, layers, 1) for _ in range(2))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.qs])


class IQLCritic(nn.Module):
    """Twin Q, its Polyak target and V, with their optimisers' update rules."""

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        *,
        hidden: int = 256,
        layers: int = 2,
        expectile: float = 0.7,
        gamma: float = 0.99,
        tau: float = 0.005,
        lr: float = 3e-4,
    ):
        super().__init__()
        self.expectile, self.gamma, self.tau = expectile, gamma, tau
        self.q = TwinQ(state_dim, action_dim, hidden, layers)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.v = mlp(state_dim, hidden, layers, 1)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=lr)
        self.v_opt = torch.optim.Adam(self.v.parameters(), lr=lr)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.v(obs).squeeze(-1)

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """r + gamma (1 - terminated) V(s')  [B]: a truncated transition bootstraps."""
        not_done = 1.0 - batch["terminated"]
        return batch["reward"] + self.gamma * not_done * self.value(batch["next_obs"])

    def update(self, batch: Batch) -> dict[str, float]:
        """One V step, one Q step and a Polyak update of the target."""
        with torch.no_grad():
            q_min = self.q_target(batch["obs"], batch["action"]).min(dim=0).values
        v_loss = expectile_loss(q_min - self.value(batch["obs"]), self.expectile)
        self.v_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        self.v_opt.step()
        target = self.td_target(batch)
        q = self.q(batch["obs"], batch["action"])
        q_loss = F.mse_loss(q, target.expand_as(q))
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        soft_update(self.q_target, self.q, self.tau)
        return {"iql/v_loss": float(v_loss.detach()), "iql/q_loss": float(q_loss.detach()),
                "iql/q_mean": float(q.mean().detach())}  # fmt: skip

    @torch.no_grad()
    def advantage(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """min(Q'_1, Q'_2)(s, a) - V(s)  [B]."""
        return self.q_target(obs, action).min(dim=0).values - self.value(obs)


def awr_update(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    critic: IQLCritic,
    batch: Batch,
    *,
    temperature: float,
    max_weight: float = 100.0,
) -> dict[str, float]:
    """Advantage-weighted regression of a deterministic policy: weights exp(temperature * A)
    clipped at ``max_weight``, times the squared error summed over action dims.
    ``policy`` maps the batch's ``raw_obs`` dict (un-normalised) to actions."""
    weight = torch.exp(temperature * critic.advantage(batch["obs"], batch["action"]))
    weight = weight.clamp(max=max_weight)
    pred = policy(batch["raw_obs"])
    loss = (weight * ((pred - batch["action"]) ** 2).sum(-1)).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"awr/loss": float(loss.detach()), "awr/weight_mean": float(weight.mean())}
