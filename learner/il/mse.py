"""``mse``: deterministic behaviour cloning, tanh output, MSE loss (IBRL's IL policy)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from learner.il.base import ILPolicy, Tensors
from learner.networks import mlp
from learner.obs import ObsSpec


class BCPolicy(ILPolicy):
    """IL policy: per-camera ResNet (GroupNorm) features fused with normalised state.

    For state observations it is an MLP with dropout. ``forward(obs)`` maps a batch
    {"state": [B, S], cam: uint8 [B, H, W, C]} to actions [B, A] in (-1, 1).
    """

    kind = "mse"

    def __init__(self, spec: ObsSpec, **trunk: Any):
        super().__init__(spec, **trunk)
        self.arch["kind"] = self.kind
        self.head = mlp(
            self.feat_dim, self.arch["hidden"], self.head_layers, spec.action_dim,
            dropout=self.head_dropout, layer_norm=self.head_layer_norm,
        )  # fmt: skip

    def forward(self, obs: Tensors, augment: bool = False) -> torch.Tensor:
        return torch.tanh(self.head(self.features(obs, augment)))

    def loss(self, obs: Tensors, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE summed over action dims, mean over the batch."""
        pred = self(obs, augment=True)
        return F.mse_loss(pred, action, reduction="none").sum(-1).mean(), {}

    def sample(
        self, obs: Tensors, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A deterministic policy: its action ``n`` times."""
        return self(obs).unsqueeze(0).expand(n, -1, -1)
