"""Encoders: random shift, ViT patch counts, ResNet output."""

from __future__ import annotations

import torch

from learner.encoders import MultiCamViT, ResNetEncoder, random_shift, vit_patches


def test_random_shift_is_an_integer_translation_within_pad() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(8, 1, 1, 1)
    y = random_shift(x, 1, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    # every output row is a (clamped) shifted row of the input
    centre = y[:, 0, 1:3, 1:3]
    diffs = centre - x[:, 0, 1:3, 1:3]
    assert torch.all(torch.isin(diffs, torch.tensor([-5.0, -4, -3, -1, 0, 1, 3, 4, 5])))
    assert torch.equal(random_shift(x, 0), x)


def test_vit_patch_count_and_multi_camera_concat() -> None:
    assert vit_patches(96) == 11
    enc = MultiCamViT(["a", "b"], 3, 48, dim=16, heads=4, depth=1)
    imgs = {c: torch.randint(0, 256, (2, 48, 48, 3), dtype=torch.uint8) for c in "ab"}
    out = enc(imgs, pad=4)
    assert out.shape == (2, 2 * vit_patches(48) ** 2, 16)


def test_resnet_encoder_output() -> None:
    enc = ResNetEncoder(6, 64, width=4, out_dim=12, dropout=0.0)
    assert enc(torch.randn(2, 6, 64, 64)).shape == (2, 12)
