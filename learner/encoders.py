"""Image encoders: random-shift augmentation, the RL ViT and the IL ResNet (GroupNorm).

Images enter as uint8 [B, H, W, C] (C = 3 * frame_stack) and are scaled to [-0.5, 0.5].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


def to_float_chw(image: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, C] -> float [B, C, H, W] in [-0.5, 0.5]."""
    return image.permute(0, 3, 1, 2).float() / 255.0 - 0.5


def random_shift(
    x: torch.Tensor, pad: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image of [B, C, H, W] by a random integer offset in [-pad, pad] pixels.

    The image is padded by edge replication and cropped back to H x W (DrQ-style).
    """
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    shift = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] + shift[:, :1]  # [B, H]
    cols = torch.arange(w, device=x.device)[None, :] + shift[:, 1:]  # [B, W]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


class Block(nn.Module):
    """Pre-LN transformer block; attention via ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, p, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, p, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, P, d_head]
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, p, d))
        return x + self.mlp(self.norm2(x))


def vit_patches(image_size: int) -> int:
    """Patches per side of the ViT stem (conv k8 s4, then conv k3 s2): 96 -> 23 -> 11."""
    return ((image_size - 8) // 4 + 1 - 3) // 2 + 1


class ViTEncoder(nn.Module):
    """Shallow ViT: conv patch stem, learned position embedding, no CLS token.

    uint8 [B, H, W, C] -> patch features [B, P, dim] with P = vit_patches(H) ** 2.
    """

    def __init__(self, in_channels: int, image_size: int, dim: int, heads: int, depth: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"vit dim {dim} is not divisible by {heads} heads")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, dim, 8, stride=4), nn.ReLU(), nn.Conv2d(dim, dim, 3, stride=2)
        )
        self.num_patches = vit_patches(image_size) ** 2
        self.pos = nn.Parameter(torch.randn(1, self.num_patches, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: float [B, C, H, W] already scaled (see ``to_float_chw``)."""
        x = self.stem(x).flatten(2).transpose(1, 2) + self.pos
        return self.norm(self.blocks(x))


class MultiCamViT(nn.Module):
    """One ViT per camera; patch features are concatenated along the patch axis."""

    def __init__(self, cameras: list[str], in_channels: int, image_size: int, **vit: int):
        super().__init__()
        self.cameras = list(cameras)
        self.vits = nn.ModuleDict({c: ViTEncoder(in_channels, image_size, **vit) for c in cameras})
        self.num_patches = len(self.cameras) * vit_patches(image_size) ** 2

    def forward(self, images: dict[str, torch.Tensor], pad: int = 0) -> torch.Tensor:
        feats = [self.vits[c](random_shift(to_float_chw(images[c]), pad)) for c in self.cameras]
        return torch.cat(feats, dim=1)


class BasicBlock(nn.Module):
    """ResNet basic block with GroupNorm (groups = channels)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.gn1 = nn.GroupNorm(cout, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.gn2 = nn.GroupNorm(cout, cout)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(cout, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.gn1(self.conv1(x)))
        return F.relu(self.gn2(self.conv2(y)) + self.skip(x))


class ResNetEncoder(nn.Module):
    """ResNet-18-style image encoder (2 blocks per stage, 4 stages) with GroupNorm.

    float [B, C, H, W] -> [B, out_dim] through Linear + LayerNorm + Dropout + ReLU.
    """

    def __init__(self, in_channels: int, image_size: int, width: int, out_dim: int, dropout: float):
        super().__init__()
        chans = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 4, 2, 1, bias=False),
            nn.GroupNorm(width, width),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        ]
        cin = width
        for i, cout in enumerate(chans):
            layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.trunk = nn.Sequential(*layers)
        with torch.no_grad():
            n = self.trunk(torch.zeros(1, in_channels, image_size, image_size)).numel()
        self.head = nn.Sequential(
            nn.Linear(n, out_dim), nn.LayerNorm(out_dim), nn.Dropout(dropout), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1))
