"""``gaussian``: a state-dependent diagonal Gaussian (tanh mean, learned log-std), trained by
negative log-likelihood; acts with its mean."""

from __future__ import annotations

import math
from typing import Any

import torch

from learner.il.base import ILPolicy, Tensors
from learner.networks import mlp
from learner.obs import ObsSpec

LOG_STD_MIN, LOG_STD_MAX = -5.0, 1.0
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, exp(log_std)^2) summed over the last axis."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - HALF_LOG_2PI).sum(-1)


class GaussianPolicy(ILPolicy):
    """Head -> mean (tanh, so in (-1, 1)) and log-std (clamped to [-5, 1]) per action dim.

    The density is over the action itself (not a squashed one), so demo actions at exactly
    +-1 (a saturated expert) have a finite likelihood.
    """

    kind = "gaussian"

    def __init__(self, spec: ObsSpec, **trunk: Any):
        super().__init__(spec, **trunk)
        self.arch["kind"] = self.kind
        a = spec.action_dim
        self.head = mlp(
            self.feat_dim, self.arch["hidden"], self.head_layers, 2 * a,
            dropout=self.head_dropout, layer_norm=self.head_layer_norm,
        )  # fmt: skip

    def dist(self, obs: Tensors, augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [B, A], log_std [B, A])."""
        raw_mean, raw_log_std = self.head(self.features(obs, augment)).chunk(2, dim=-1)
        return torch.tanh(raw_mean), raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, obs: Tensors, augment: bool = False) -> torch.Tensor:
        return self.dist(obs, augment)[0]

    def loss(self, obs: Tensors, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        mean, log_std = self.dist(obs, augment=True)
        nll = -gaussian_log_prob(action, mean, log_std).mean()
        return nll, {"bc/log_std": float(log_std.detach().mean())}

    def sample(
        self, obs: Tensors, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        mean, log_std = self.dist(obs)
        eps = torch.randn((n, *mean.shape), generator=generator, device=mean.device)
        return (mean + eps * log_std.exp()).clamp(-1 + 1e-6, 1 - 1e-6)
