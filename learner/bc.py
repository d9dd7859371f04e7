"""The imitation (IL) policy: deterministic behaviour cloning with MSE loss and tanh output."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from learner.encoders import ResNetEncoder, random_shift, to_float_chw
from learner.networks import mlp
from learner.obs import Normalizer, ObsSpec


class BCPolicy(nn.Module):
    """IL policy: per-camera ResNet (GroupNorm) features fused with normalised state.

    For state observations it is an MLP with dropout. ``forward(obs)`` maps a batch
    {"state": [B, S], cam: uint8 [B, H, W, C]} to actions [B, A] in (-1, 1).
    """

    def __init__(
        self,
        spec: ObsSpec,
        *,
        hidden: int,
        layers: int,
        dropout: float,
        pixel_dropout: float = 0.0,
        resnet_width: int = 64,
        shift_pad: int = 4,
    ):
        super().__init__()
        self.spec = spec
        self.arch: dict[str, Any] = {
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
            "pixel_dropout": pixel_dropout,
            "resnet_width": resnet_width,
            "shift_pad": shift_pad,
        }
        self.shift_pad = shift_pad
        self.normalizer = Normalizer(spec.state_dim)
        self.encoders = nn.ModuleDict()
        in_dim = spec.state_dim
        if spec.pixels:
            assert spec.image_shape is not None
            h, _, c = spec.image_shape
            feat = 8 * resnet_width
            for cam in spec.cameras:
                self.encoders[cam] = ResNetEncoder(c, h, resnet_width, feat, pixel_dropout)
            in_dim += feat * len(spec.cameras)
            layers, dropout = 1, pixel_dropout
        self.head = mlp(
            in_dim, hidden, layers, spec.action_dim, dropout=dropout, layer_norm=spec.pixels
        )

    def forward(self, obs: dict[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        parts = [self.normalizer(obs["state"])]
        pad = self.shift_pad if augment else 0
        for cam, enc in self.encoders.items():
            parts.append(enc(random_shift(to_float_chw(obs[cam]), pad)))
        return torch.tanh(self.head(torch.cat(parts, dim=-1)))


def bc_update(
    policy: BCPolicy,
    optimizer: torch.optim.Optimizer,
    obs: dict[str, torch.Tensor],
    action: torch.Tensor,
    grad_clip: float,
) -> dict[str, float]:
    """One MSE step (summed over action dims, mean over batch); returns ``bc/loss``."""
    policy.train()
    pred = policy(obs, augment=True)
    loss = F.mse_loss(pred, action, reduction="none").sum(-1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad = nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    return {"bc/loss": float(loss.detach()), "bc/grad_norm": float(grad)}
