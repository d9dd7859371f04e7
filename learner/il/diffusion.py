"""``diffusion``: a DDPM-trained noise-prediction network conditioned on the observation
features, sampled with DDIM (deterministic, eta = 0) in a few steps.

Training (Ho et al.): a_t = sqrt(abar_t) a + sqrt(1 - abar_t) eps for a random step t of a
cosine schedule of ``train_steps``; the network predicts eps (MSE), or with ``predict = "x0"``
the clean action a itself (the eps error is divided by sqrt(abar_t) in the clean action, so
eps prediction is imprecise where abar_t is small; an x0 network is precise on dimensions the
demos hold constant). With ``obs_noise`` > 0 the observation features (normalised state, camera
features) get Gaussian noise of that std while training, never when acting: the denoiser
becomes smooth in the observation, so a state a little off the demos (a new layout, a step
that drifted) gets the action of the demos near it instead of an erratic one; without it the
network fits the few demo states exactly and acts erratically between them (sim:detour,
bench/README.md). Sampling: DDIM over
``ddim_steps`` evenly spaced steps, the predicted clean action clamped to [-1, 1] at each.

The deterministic action (``forward``, what IBRL proposes, in the TD target too) starts from
``candidates`` fixed noise vectors drawn once from ``noise_seed`` and stored with the weights,
so it is a deterministic function of the observation, the same after a bundle round trip.
Of the candidates it returns the one with the most others near it (``densest``): with
candidates spread over two ways of the demos, it is one of the ways, never between them.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from learner.il.base import ILPolicy, Tensors
from learner.networks import mlp
from learner.obs import ObsSpec

TIME_EMB = 32
PREDICTS = ("eps", "x0")
MODE_RADIUS = 0.25  # action-space distance within which two samples count as one mode


def cosine_alpha_bar(steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cumulative products abar_t, t = 0..steps-1, of the cosine schedule (Nichol & Dhariwal)."""
    f = [math.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2 for t in range(steps + 1)]
    betas = torch.tensor([min(1 - f[t + 1] / f[t], max_beta) for t in range(steps)])
    return torch.cumprod(1.0 - betas, dim=0)


def time_embedding(t: torch.Tensor, dim: int = TIME_EMB) -> torch.Tensor:
    """Sinusoidal embedding of integer steps t [N] -> [N, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float().unsqueeze(-1) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def densest(x: torch.Tensor, radius: float = MODE_RADIUS) -> torch.Tensor:
    """[N, B, A] -> [B, A]: per column b, the row with the most rows within ``radius``
    (Euclidean), ties to the smaller summed distance: a mode of the samples, never a point
    between two groups of them (a medoid can be)."""
    cols = x.transpose(0, 1)  # [B, N, A]
    dist = torch.cdist(cols, cols)  # [B, N, N]
    near = (dist < radius).sum(-1).float()
    score = near - dist.sum(-1) / (dist.sum(-1).max(-1, keepdim=True).values + 1e-9)
    best = score.argmax(-1)
    return x[best, torch.arange(x.shape[1], device=x.device)]


class DiffusionPolicy(ILPolicy):
    """eps_theta(a_t, t, features) as an MLP on [features, a_t, sinusoidal(t)]."""

    kind = "diffusion"
    alpha_bar: torch.Tensor
    fixed_noise: torch.Tensor

    def __init__(
        self,
        spec: ObsSpec,
        *,
        train_steps: int = 100,
        ddim_steps: int = 8,
        candidates: int = 4,
        noise_seed: int = 0,
        predict: str = "eps",
        obs_noise: float = 0.0,
        **trunk: Any,
    ):
        super().__init__(spec, **trunk)
        if not 1 <= ddim_steps <= train_steps:
            raise ValueError(f"ddim_steps must be in [1, {train_steps}], got {ddim_steps}")
        if predict not in PREDICTS:
            raise ValueError(f"predict must be one of {PREDICTS}, got {predict!r}")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        if not 0.0 <= obs_noise < math.inf:
            raise ValueError(f"obs_noise must be a finite std >= 0, got {obs_noise}")
        self.arch.update(kind=self.kind, train_steps=train_steps, ddim_steps=ddim_steps,
                         candidates=candidates, noise_seed=noise_seed, predict=predict,
                         obs_noise=obs_noise)  # fmt: skip
        self.train_steps, self.ddim_steps, self.predict = train_steps, ddim_steps, predict
        self.obs_noise = obs_noise
        a = spec.action_dim
        self.head = mlp(
            self.feat_dim + a + TIME_EMB, self.arch["hidden"], self.head_layers, a,
            dropout=self.head_dropout, layer_norm=self.head_layer_norm,
        )  # fmt: skip
        self.register_buffer("alpha_bar", cosine_alpha_bar(train_steps))
        gen = torch.Generator().manual_seed(noise_seed)
        self.register_buffer("fixed_noise", torch.randn(candidates, a, generator=gen))

    def net(self, feat: torch.Tensor, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's output [N, A] (noise or clean action, ``predict``) for features
        [N, F], noisy actions [N, A], steps t [N]."""
        return self.head(torch.cat([feat, noisy, time_embedding(t)], dim=-1))

    def clean(self, feat: torch.Tensor, x: torch.Tensor, t: int) -> torch.Tensor:
        """The predicted clean action [N, A] in [-1, 1] at step ``t`` from noisy ``x``."""
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        out = self.net(feat, x, tt)
        if self.predict == "x0":
            return out.clamp(-1.0, 1.0)
        ab = self.alpha_bar[t]
        return ((x - (1 - ab).sqrt() * out) / ab.sqrt()).clamp(-1.0, 1.0)

    def loss(self, obs: Tensors, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        feat = self.features(obs, augment=True)
        if self.obs_noise > 0:
            feat = feat + self.obs_noise * torch.randn_like(feat)
        t = torch.randint(0, self.train_steps, (action.shape[0],), device=action.device)
        noise = torch.randn_like(action)
        ab = self.alpha_bar[t].unsqueeze(-1)
        noisy = ab.sqrt() * action + (1 - ab).sqrt() * noise
        target = action if self.predict == "x0" else noise
        return (self.net(feat, noisy, t) - target).square().sum(-1).mean(), {}

    def denoise(self, feat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """DDIM (eta = 0) from noise ``x`` [N, A] to actions [N, A] in (-1, 1)."""
        steps = torch.linspace(self.train_steps - 1, 0, self.ddim_steps).round().long().tolist()
        for i, t in enumerate(steps):
            ab = self.alpha_bar[t]
            x0 = self.clean(feat, x, t)
            if i + 1 == len(steps):
                x = x0
                break
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # consistent with the clamped x0
            ab_next = self.alpha_bar[steps[i + 1]]
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
        return x.clamp(-1 + 1e-6, 1 - 1e-6)

    def _from_noise(self, obs: Tensors, noise: torch.Tensor) -> torch.Tensor:
        """noise [n, B, A] -> actions [n, B, A]."""
        feat = self.features(obs)
        n, b, a = noise.shape
        feats = feat.unsqueeze(0).expand(n, -1, -1).reshape(n * b, -1)
        return self.denoise(feats, noise.reshape(n * b, a)).view(n, b, a)

    def forward(self, obs: Tensors, augment: bool = False) -> torch.Tensor:
        """The densest of the samples from the fixed noise vectors (deterministic)."""
        b = obs["state"].shape[0]
        noise = self.fixed_noise.unsqueeze(1).expand(-1, b, -1).to(obs["state"].device)
        samples = self._from_noise(obs, noise)
        return samples[0] if samples.shape[0] == 1 else densest(samples)

    def sample(
        self, obs: Tensors, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        b, dev = obs["state"].shape[0], obs["state"].device
        noise = torch.randn((n, b, self.action_dim), generator=generator, device=dev)
        return self._from_noise(obs, noise)
