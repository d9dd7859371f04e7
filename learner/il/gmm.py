"""``gmm``: a mixture of K diagonal Gaussians per observation (robomimic's GMM policy, K = 5
by default), trained by log-likelihood; acts with the mean of its most probable component,
so with two ways in the demos it commits to one of them instead of averaging them."""

from __future__ import annotations

import math
from typing import Any

import torch

from learner.il.base import ILPolicy, Tensors
from learner.il.gaussian import LOG_STD_MIN, gaussian_log_prob
from learner.networks import mlp
from learner.obs import ObsSpec

WEIGHT_FLOOR = 0.1
GMM_LOG_STD_MAX = -2.0  # components no wider than 0.14: one cannot stretch over two ways
WIDE_START = 3.0  # initial log-std bias before the squash (see GMMPolicy._start_wide)


class GMMPolicy(ILPolicy):
    """Head -> K component logits, K means (tanh) and K log-stds per action dim."""

    kind = "gmm"

    def __init__(self, spec: ObsSpec, *, modes: int = 5, **trunk: Any):
        super().__init__(spec, **trunk)
        if modes < 1:
            raise ValueError(f"a GMM needs at least one mode, got {modes}")
        self.arch.update(kind=self.kind, modes=modes)
        self.modes = modes
        out = modes * (1 + 2 * spec.action_dim)
        self.head = mlp(
            self.feat_dim, self.arch["hidden"], self.head_layers, out,
            dropout=self.head_dropout, layer_norm=self.head_layer_norm,
        )  # fmt: skip
        self._start_wide()

    def _start_wide(self) -> None:
        """Every component starts at nearly the widest width: log-std bias +3 before the
        squash, sigmoid(3) = 0.95 of the way to GMM_LOG_STD_MAX. Started narrow (the
        default init: halfway, e^-3.5), the first large-loss steps hand all the weight to
        whichever component happens to be widest, and on some seeds it keeps it."""
        head = self.head
        assert isinstance(head, torch.nn.Sequential)
        last = head[-1]
        assert isinstance(last, torch.nn.Linear)
        k, a = self.modes, self.action_dim
        with torch.no_grad():
            last.bias[k:].view(k, 2 * a)[:, a:] = WIDE_START

    def mixture(
        self, obs: Tensors, augment: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits [B, K], means [B, K, A], log_stds [B, K, A])."""
        out = self.head(self.features(obs, augment))
        b, k, a = out.shape[0], self.modes, self.action_dim
        logits = out[:, :k]
        mean, log_std = out[:, k:].view(b, k, 2 * a).chunk(2, dim=-1)
        # a smooth squash into [LOG_STD_MIN, GMM_LOG_STD_MAX]: a clamp would stop the
        # gradient of a component that starts wider than the cap, and it would stay that wide
        span = GMM_LOG_STD_MAX - LOG_STD_MIN
        return logits, torch.tanh(mean), LOG_STD_MIN + span * torch.sigmoid(log_std)

    def forward(self, obs: Tensors, augment: bool = False) -> torch.Tensor:
        """The mean of the most probable component."""
        logits, mean, _ = self.mixture(obs, augment)
        best = logits.argmax(-1)
        return mean[torch.arange(mean.shape[0], device=mean.device), best]

    def log_prob(
        self, obs: Tensors, action: torch.Tensor, augment: bool = False, floor: float = 0.0
    ) -> torch.Tensor:
        """log pi(action | obs) [B]; ``floor`` > 0 mixes the weights with uniform ones:
        (1 - floor) * softmax(logits) + floor / K."""
        logits, mean, log_std = self.mixture(obs, augment)
        per_mode = gaussian_log_prob(action.unsqueeze(1), mean, log_std)  # [B, K]
        log_w = torch.log_softmax(logits, -1)
        if floor > 0:
            uniform = torch.full_like(log_w, math.log(floor / self.modes))
            log_w = torch.logaddexp(log_w + math.log1p(-floor), uniform)
        return torch.logsumexp(log_w + per_mode, dim=-1)

    def loss(self, obs: Tensors, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """NLL with the weights floored at WEIGHT_FLOOR / K: a component whose weight went
        to zero still gets the gradient of the data it explains, so one wide component
        cannot starve the others (the mixture collapsing onto the average of two ways)."""
        return -self.log_prob(obs, action, augment=True, floor=WEIGHT_FLOOR).mean(), {}

    def sample(
        self, obs: Tensors, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        logits, mean, log_std = self.mixture(obs)
        b = mean.shape[0]
        probs = torch.softmax(logits.float(), -1)
        idx = torch.multinomial(probs, n, replacement=True, generator=generator).T  # [n, B]
        rows = torch.arange(b, device=mean.device).expand(n, b)
        mu, std = mean[rows, idx], log_std[rows, idx].exp()  # [n, B, A]
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return (mu + eps * std).clamp(-1 + 1e-6, 1 - 1e-6)
