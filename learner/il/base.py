"""What every imitation (IL) policy kind shares: the observation trunk, the call contract and
the update step.

The trunk is the one the MSE policy always had: the state normalised with demo statistics
and, for pixel observations, one ResNet (GroupNorm) per camera, concatenated. Each kind adds
a ``head`` on those features and implements

* ``forward(obs, augment=False) -> action [B, A]`` in (-1, 1): the deterministic action
  (mode or mean; for diffusion a fixed-noise sample), what IBRL proposes and the bridge
  executes;
* ``loss(obs, action) -> (loss, metrics)``: its training objective on a demo batch;
* ``sample(obs, n) -> actions [n, B, A]``: draws from the policy's distribution (IBRL's
  optional critic-scored proposal).

``arch`` holds everything needed to rebuild a kind (``learner.il.build_il``); its ``kind``
entry names the class. State dict keys of the trunk (``normalizer``, ``encoders``) are the
same for every kind.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from learner.encoders import ResNetEncoder, random_shift, to_float_chw
from learner.obs import Normalizer, ObsSpec

Tensors = dict[str, torch.Tensor]


class ILPolicy(nn.Module):
    """Base of the IL policy kinds: normaliser + per-camera ResNet features.

    After ``__init__``, ``feat_dim`` is the trunk's output width, and ``head_layers`` /
    ``head_dropout`` / ``head_layer_norm`` say how the kind's MLP is shaped (state: ``layers``
    hidden blocks with ``dropout``; pixels: one block with LayerNorm and ``pixel_dropout``).
    """

    kind = "base"
    head: nn.Module  # the kind's network on the trunk features
    proposal_samples = 1  # IBRL: >1 = that many samples scored by the critic (set by make_il)

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
        norm_clip: float | None = None,
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
            "norm_clip": norm_clip,
        }
        self.shift_pad = shift_pad
        self.normalizer = Normalizer(spec.state_dim, norm_clip)
        self.encoders = nn.ModuleDict()
        self.feat_dim = spec.state_dim
        self.head_layers, self.head_dropout, self.head_layer_norm = layers, dropout, False
        if spec.pixels:
            assert spec.image_shape is not None
            h, _, c = spec.image_shape
            feat = 8 * resnet_width
            for cam in spec.cameras:
                self.encoders[cam] = ResNetEncoder(c, h, resnet_width, feat, pixel_dropout)
            self.feat_dim += feat * len(spec.cameras)
            self.head_layers, self.head_dropout, self.head_layer_norm = 1, pixel_dropout, True

    @property
    def action_dim(self) -> int:
        return self.spec.action_dim

    def features(self, obs: Tensors, augment: bool = False) -> torch.Tensor:
        """Observation batch {"state": [B, S], cam: uint8 [B, H, W, C]} -> features [B, F]."""
        parts = [self.normalizer(obs["state"])]
        pad = self.shift_pad if augment else 0
        for cam, enc in self.encoders.items():
            parts.append(enc(random_shift(to_float_chw(obs[cam]), pad)))
        return torch.cat(parts, dim=-1)

    def loss(self, obs: Tensors, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on a batch (mean over the batch) and extra metrics."""
        raise NotImplementedError

    def sample(
        self, obs: Tensors, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` actions per observation from the policy's distribution: [n, B, A] in (-1, 1)."""
        raise NotImplementedError


def il_update(
    policy: ILPolicy,
    optimizer: torch.optim.Optimizer,
    obs: Tensors,
    action: torch.Tensor,
    grad_clip: float,
) -> dict[str, float]:
    """One gradient step of ``policy.loss`` (with image augmentation); returns ``bc/loss``,
    ``bc/grad_norm`` and the kind's own metrics."""
    policy.train()
    loss, extra = policy.loss(obs, action)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad = nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    return {"bc/loss": float(loss.detach()), "bc/grad_norm": float(grad), **extra}
