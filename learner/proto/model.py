"""Proto-RL representation (Yarats et al., ICML 2021) on the pixel agent's ViT encoder.

Online path: random shift -> encoder f (``MultiCamViT``, the IBRL pixel encoder) -> projector
g (Linear to the latent z) -> predictor v (2-layer MLP) -> u; p = softmax(u_hat . c / T) over
the M unit-norm prototypes c. Target path: the next observation, random shift, EMA copies of
f and g -> z', and q = Sinkhorn-Knopp(z'_hat . c / T) (no gradient). Loss: -sum q log p.

Observations are dicts with uint8 [B, H, W, C] images per camera (``learner.obs``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from learner.encoders import MultiCamViT
from learner.networks import soft_update
from learner.obs import ObsSpec
from learner.proto.queue import LatentQueue, knn_reward
from learner.proto.sinkhorn import sinkhorn_knopp
from tandem.settings.learner import LearnerSettings

Tensors = dict[str, torch.Tensor]


def make_encoder(cfg: LearnerSettings, spec: ObsSpec) -> MultiCamViT:
    """The pixel encoder the IBRL agent builds for ``cfg`` and ``spec`` (same shapes)."""
    if not spec.pixels or spec.image_shape is None:
        raise ValueError("Proto-RL needs pixel observations (a spec with cameras)")
    h, _, c = spec.image_shape
    return MultiCamViT(
        list(spec.cameras), c, h, dim=cfg.vit_dim, heads=cfg.vit_heads, depth=cfg.vit_depth
    )


class ProtoModel(nn.Module):
    """Encoder f, projector g, predictor v, prototypes [M, D] and the EMA targets of f and g."""

    prototypes: nn.Parameter

    def __init__(self, cfg: LearnerSettings, spec: ObsSpec):
        super().__init__()
        self.temperature = cfg.proto_temperature
        self.encoder = make_encoder(cfg, spec)
        feat = self.encoder.num_patches * cfg.vit_dim
        d = cfg.proto_latent_dim
        self.projector = nn.Linear(feat, d)
        self.predictor = nn.Sequential(
            nn.Linear(d, cfg.proto_pred_hidden), nn.ReLU(), nn.Linear(cfg.proto_pred_hidden, d)
        )
        self.prototypes = nn.Parameter(F.normalize(torch.randn(cfg.proto_prototypes, d), dim=1))
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def online_params(self) -> list[nn.Parameter]:
        """What the representation loss trains: f, g, v and the prototypes."""
        mods = (self.encoder, self.projector, self.predictor)
        return [p for m in mods for p in m.parameters()] + [self.prototypes]

    def latent(self, obs: Tensors, pad: int = 0) -> torch.Tensor:
        """z_hat = normalise(g(f(obs))) [B, D] with the online networks (no predictor)."""
        return F.normalize(self.projector(self._features(self.encoder, obs, pad)), dim=1)

    def target_latent(self, obs: Tensors, pad: int = 0) -> torch.Tensor:
        """The same with the EMA target networks."""
        feat = self._features(self.target_encoder, obs, pad)
        return F.normalize(self.target_projector(feat), dim=1)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """Cosine scores [B, M] of unit latents against the prototypes."""
        return z @ F.normalize(self.prototypes, dim=1).T

    def loss(self, obs: Tensors, next_obs: Tensors, pad: int, iters: int) -> torch.Tensor:
        """Cross-entropy -sum_k q_{t+1,k} log p_{t,k}, averaged over the batch."""
        u = self.predictor(self.projector(self._features(self.encoder, obs, pad)))
        log_p = F.log_softmax(self.scores(F.normalize(u, dim=1)) / self.temperature, dim=1)
        with torch.no_grad():
            q = sinkhorn_knopp(self.scores(self.target_latent(next_obs, pad)), self.temperature,
                               iters)  # fmt: skip
        return -(q * log_p).sum(dim=1).mean()

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.copy_(F.normalize(self.prototypes, dim=1))

    @torch.no_grad()
    def update_targets(self, tau: float) -> None:
        """target <- (1 - tau) * target + tau * online, for f and g."""
        soft_update(self.target_encoder, self.encoder, tau)
        soft_update(self.target_projector, self.projector, tau)

    @staticmethod
    def _features(encoder: MultiCamViT, obs: Tensors, pad: int) -> torch.Tensor:
        return encoder({c: obs[c] for c in encoder.cameras}, pad).flatten(1)


class ProtoLearner:
    """The Proto-RL model, its optimiser and the latent queue: ``update`` trains the
    representation on (obs, next_obs) batches, ``intrinsic_reward`` scores next observations."""

    def __init__(
        self, cfg: LearnerSettings, spec: ObsSpec, device: torch.device | str = "cpu", seed: int = 0
    ):
        self.cfg, self.spec, self.device = cfg, spec, torch.device(device)
        self.model = ProtoModel(cfg, spec).to(self.device)
        self.opt = torch.optim.Adam(self.model.online_params(), lr=cfg.proto_lr)
        self.queue = LatentQueue(
            cfg.proto_prototypes, cfg.proto_queue_batches, cfg.proto_latent_dim, self.device
        )
        self.num_updates = 0
        # the queue's draws use their own generator: they leave the global RNG stream alone
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def update(self, obs: Tensors, next_obs: Tensors) -> dict[str, float]:
        """One representation step, prototypes back on the unit sphere, one EMA step."""
        loss = self.model.loss(obs, next_obs, self.cfg.shift_pad, self.cfg.proto_sinkhorn_iters)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.model.normalize_prototypes()
        self.model.update_targets(self.cfg.proto_tau)
        self.num_updates += 1
        return {"proto/loss": float(loss.detach())}

    @torch.no_grad()
    def intrinsic_reward(self, next_obs: Tensors) -> torch.Tensor:
        """r_int [B] of a batch of next observations: queue M of their latents (one per
        prototype, by assignment weights), then the distance of each latent to its k-th
        nearest queued latent (the batch is queued first, as Proto-RL does: k > 1 keeps a
        latent from being its own only neighbour)."""
        z = self.model.latent(next_obs)
        self.queue.push(z, self.model.scores(z), self.generator)
        return knn_reward(z, self.queue.stored(), self.cfg.proto_knn_k)

    def state_dict(self) -> dict[str, object]:
        return {"model": self.model.state_dict(), "queue": self.queue.state_dict(),
                "num_updates": self.num_updates}  # fmt: skip
