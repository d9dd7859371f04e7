"""``bins``: each action dimension discretised into uniform bins over [-1, 1] and predicted
autoregressively, dimension d conditioned on the observation and the (bin-centre) values of
dimensions 0..d-1; trained by cross-entropy, acts greedily (the most probable bin of each
dimension in turn)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from learner.il.base import ILPolicy, Tensors
from learner.networks import mlp
from learner.obs import ObsSpec


def to_bins(action: torch.Tensor, bins: int) -> torch.Tensor:
    """Actions in [-1, 1] -> bin indices in [0, bins) (uniform bins; +-1 in the end bins)."""
    idx = torch.floor((action.clamp(-1.0, 1.0) + 1.0) * 0.5 * bins).long()
    return idx.clamp(0, bins - 1)


def from_bins(idx: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin indices -> the bin centres, strictly inside (-1, 1)."""
    return (idx.float() + 0.5) * (2.0 / bins) - 1.0


class BinsPolicy(ILPolicy):
    """A trunk MLP embeds the features once; a small head shared by the dimensions maps
    [embedding, values of the earlier dims (0 for the rest), one-hot of d] to the bin logits
    of dimension d."""

    kind = "bins"

    def __init__(self, spec: ObsSpec, *, bins: int = 64, **trunk: Any):
        super().__init__(spec, **trunk)
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.arch.update(kind=self.kind, bins=bins)
        self.bins = bins
        hidden, a = self.arch["hidden"], spec.action_dim
        self.embed = nn.Sequential(
            mlp(self.feat_dim, hidden, self.head_layers, hidden, dropout=self.head_dropout,
                layer_norm=self.head_layer_norm),
            nn.ReLU(),
        )  # fmt: skip
        # The head's first layer on [emb, prev, one-hot(d)], split so the embedding's part is
        # computed once per observation, not once per dimension.
        self.head_in = nn.Linear(hidden, hidden)
        self.context = nn.Linear(2 * a, hidden, bias=False)
        self.head = nn.ReLU()
        # one output layer per dimension: the dimension selects its weights (an added one-hot
        # alone let the head copy the previous dimension's value on saturated demos)
        bound = hidden**-0.5
        self.out_weight = nn.Parameter(torch.empty(a, hidden, bins).uniform_(-bound, bound))
        self.out_bias = nn.Parameter(torch.zeros(a, bins))

    def _hidden(self, emb: torch.Tensor, prev: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """emb [..., H] (first head layer applied), prev [..., A] (masked), d [...] -> [..., H]."""
        onehot = F.one_hot(d, self.action_dim).to(emb.dtype)
        return self.head(emb + self.context(torch.cat([prev, onehot], dim=-1)))

    def _logits(self, emb: torch.Tensor, prev: torch.Tensor, d: int) -> torch.Tensor:
        """Logits [N, bins] of dimension ``d`` for emb [N, H] and prev [N, A] (masked)."""
        dd = torch.full((emb.shape[0],), d, device=emb.device, dtype=torch.long)
        return self._hidden(emb, prev, dd) @ self.out_weight[d] + self.out_bias[d]

    def _embed(self, obs: Tensors, augment: bool = False) -> torch.Tensor:
        """[B, H]: the embedding through the head's first linear layer."""
        return self.head_in(self.embed(self.features(obs, augment)))

    def loss(self, obs: Tensors, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Teacher forcing: every dimension in one pass of B * A rows; CE summed over dims."""
        emb = self._embed(obs, augment=True)
        b, a = action.shape
        target = to_bins(action, self.bins)
        prev_values = from_bins(target, self.bins)
        mask = torch.tril(torch.ones(a, a, device=action.device), diagonal=-1)  # [d, j<d]
        prev = prev_values.unsqueeze(1) * mask  # [B, A(d), A]
        d = torch.arange(a, device=action.device).expand(b, a)
        hidden = self._hidden(emb.unsqueeze(1).expand(b, a, -1), prev, d)  # [B, A, H]
        logits = torch.einsum("bah,ahk->bak", hidden, self.out_weight) + self.out_bias
        ce = F.cross_entropy(logits.reshape(b * a, -1), target.reshape(-1), reduction="none")
        ce = ce.view(b, a)
        return ce.sum(-1).mean(), {}

    def _decode(self, emb: torch.Tensor, pick: Any) -> torch.Tensor:
        n, a = emb.shape[0], self.action_dim
        values = torch.zeros(n, a, device=emb.device, dtype=emb.dtype)
        for d in range(a):
            values[:, d] = from_bins(pick(self._logits(emb, values.clone(), d)), self.bins)
        return values

    def forward(self, obs: Tensors, augment: bool = False) -> torch.Tensor:
        """Greedy decoding: the most probable bin of each dimension, in order."""
        emb = self._embed(obs, augment)
        return self._decode(emb, lambda logits: logits.argmax(-1))

    def sample(
        self, obs: Tensors, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        emb = self._embed(obs)
        b = emb.shape[0]
        rows = emb.unsqueeze(0).expand(n, -1, -1).reshape(n * b, -1)

        def draw(logits: torch.Tensor) -> torch.Tensor:
            probs = torch.softmax(logits.float(), -1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

        return self._decode(rows, draw).view(n, b, self.action_dim)
