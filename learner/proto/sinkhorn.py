"""Sinkhorn-Knopp: balanced soft assignments of a batch to prototypes (SwAV, Proto-RL)."""

from __future__ import annotations

import torch


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, temperature: float, iters: int) -> torch.Tensor:
    """Scores [B, K] (sample b against prototype k) -> assignments q [B, K].

    Starts from exp(scores / temperature) and alternately rescales so that every prototype
    receives a 1/K share of the total mass and every sample a 1/B share, ``iters`` times;
    then each row is normalised. Each row of q sums to 1 (a distribution over prototypes);
    each column sums to B/K (every prototype gets an equal load) up to the residual of the
    last row normalisation, which shrinks as ``iters`` grows.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, K], got shape {tuple(scores.shape)}")
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    logits = scores.float() / temperature
    q = torch.exp(logits - logits.max())  # [B, K]; the max keeps exp finite
    q = q / q.sum()
    b, k = q.shape
    for _ in range(iters):
        q = q / q.sum(dim=0, keepdim=True) / k  # each prototype's column: total 1/K
        q = q / q.sum(dim=1, keepdim=True) / b  # each sample's row: total 1/B
    return q * b  # rows sum to 1
