"""The Proto-RL latent queue and its k-nearest-neighbour intrinsic reward."""

from __future__ import annotations

import torch


class LatentQueue:
    """Ring of the latents of the last T batches: M per batch (one per prototype), M * T in all.

    For each prototype one latent of the batch is drawn with probability softmax over the
    batch of that prototype's scores (its assignment weights), so the queue spreads over the
    clusters the batch visits rather than over where most samples sit.
    """

    def __init__(self, prototypes: int, batches: int, dim: int, device: torch.device | str):
        self.prototypes, self.batches = prototypes, batches
        self.latents = torch.zeros(prototypes * batches, dim, device=device)
        self.ptr = 0
        self.size = 0

    @property
    def capacity(self) -> int:
        return self.latents.shape[0]

    @torch.no_grad()
    def push(
        self, z: torch.Tensor, scores: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Queue M latents of the batch ``z`` [B, D] drawn with ``scores`` [B, M]; returns
        the indices into the batch that were queued (long [M])."""
        if scores.shape != (z.shape[0], self.prototypes):
            raise ValueError(
                f"scores must be [B, {self.prototypes}] for a batch of {z.shape[0]}, "
                f"got {tuple(scores.shape)}"
            )
        weights = torch.softmax(scores.float(), dim=0).T  # [M, B]: a distribution per prototype
        idx = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        m = self.prototypes
        self.latents[self.ptr : self.ptr + m] = z[idx].to(self.latents.dtype)
        self.ptr = (self.ptr + m) % self.capacity
        self.size = min(self.size + m, self.capacity)
        return idx

    def stored(self) -> torch.Tensor:
        """The queued latents [N, D], N <= M * T."""
        return self.latents[: self.size]

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        return {"latents": self.latents.clone(), "ptr": self.ptr, "size": self.size}

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        latents = state["latents"]
        assert isinstance(latents, torch.Tensor)
        if latents.shape != self.latents.shape:
            raise ValueError(
                f"queue of shape {tuple(latents.shape)} does not fit {tuple(self.latents.shape)}"
            )
        self.latents.copy_(latents)
        self.ptr, self.size = int(state["ptr"]), int(state["size"])


@torch.no_grad()
def knn_reward(z: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
    """r_int = ||z - NN_k(z, bank)||: Euclidean distance from each row of ``z`` [B, D] to its
    k-th nearest row of ``bank`` [N, D] -> [B]."""
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k = {k} needs 1 <= k <= {bank.shape[0]} queued latents")
    dist = torch.cdist(z.float(), bank.float())  # [B, N]
    return dist.topk(k, dim=1, largest=False).values[:, -1]
