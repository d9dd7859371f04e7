"""Actor and critic networks of the TD3 backbone, and the truncated-normal action noise.

Shapes: B = batch, A = action dim, S = state feature dim, P = patches, D = patch width,
H = number of critic heads. Critics return Q of every head as [H, B].

``build_networks``, ``encode``, ``propose``, ``exploration_std`` and ``autocast`` are the
pieces that acting shares with learning: the training agent (``learner.ibrl``) and the
acting-only policy of a bundle (``learner.acting``) both build and run their networks with
them, so the two act alike by construction.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from learner.encoders import MultiCamViT
from learner.selection import SelectionMode, select_proposal, selection_mode

if TYPE_CHECKING:
    from learner.obs import ObsSpec
    from tandem.settings.learner import LearnerSettings

Tensors = dict[str, torch.Tensor]


def mlp(
    in_dim: int,
    hidden: int,
    layers: int,
    out_dim: int,
    *,
    dropout: float = 0.0,
    layer_norm: bool = False,
) -> nn.Sequential:
    """``layers`` hidden blocks of Linear (+LayerNorm) (+Dropout) + ReLU, then Linear."""
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        blocks.append(nn.Linear(dim, hidden))
        if layer_norm:
            blocks.append(nn.LayerNorm(hidden))
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
        blocks.append(nn.ReLU())
        dim = hidden
    blocks.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*blocks)


def sample_action(
    mu: torch.Tensor,
    std: float,
    clip: float | None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Truncated-normal sample around ``mu`` [B, A] in (-1, 1).

    The noise is ``std * eps`` clipped to ``[-clip, clip]`` (no clip when None); the result is
    clamped to (-1, 1) with a straight-through gradient so the actor loss still reaches ``mu``.
    """
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    noise = eps * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    action = mu + noise
    clamped = action.clamp(-1.0 + 1e-6, 1.0 - 1e-6)
    return action - action.detach() + clamped.detach()


class StateActor(nn.Module):
    """Deterministic tanh actor on a state feature vector [B, S] -> [B, A]."""

    def __init__(self, in_dim: int, action_dim: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.net = mlp(in_dim, hidden, layers, action_dim, dropout=dropout)

    def forward(self, feat: torch.Tensor, prop: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.net(feat))


class PixelActor(nn.Module):
    """Actor on ViT patch features [B, P, D] and proprioception [B, S] -> [B, A].

    The flattened patches are compressed (Linear + LN + Dropout + ReLU), concatenated with
    proprioception and passed through an MLP with LayerNorm and dropout, then tanh.
    """

    def __init__(
        self,
        num_patches: int,
        patch_dim: int,
        prop_dim: int,
        action_dim: int,
        *,
        compress: int,
        hidden: int,
        layers: int,
        dropout: float,
    ):
        super().__init__()
        self.compress = nn.Sequential(
            nn.Linear(num_patches * patch_dim, compress),
            nn.LayerNorm(compress),
            nn.Dropout(dropout),
            nn.ReLU(),
        )
        self.net = mlp(
            compress + prop_dim, hidden, layers, action_dim, dropout=dropout, layer_norm=True
        )

    def forward(self, feat: torch.Tensor, prop: torch.Tensor | None = None) -> torch.Tensor:
        x = self.compress(feat.flatten(1))
        if prop is not None:
            x = torch.cat([x, prop], dim=-1)
        return torch.tanh(self.net(x))


class EnsembleLinear(nn.Module):
    """H independent linear layers applied with one batched matmul: [H, B, I] -> [H, B, O]."""

    def __init__(self, heads: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(heads, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(heads, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, heads: torch.Tensor | None = None) -> torch.Tensor:
        """``heads`` (long [K]): apply only these layers, [K, B, I] -> [K, B, O]."""
        if heads is None:
            return torch.baddbmm(self.bias, x, self.weight)
        weight, bias = self.weight.index_select(0, heads), self.bias.index_select(0, heads)
        return torch.baddbmm(bias, x, weight)


class EnsembleCritic(nn.Module):
    """REDQ-style ensemble of H MLP Q-heads on [state feature, action] (LayerNorm on)."""

    def __init__(self, in_dim: int, action_dim: int, hidden: int, layers: int, heads: int):
        super().__init__()
        self.heads = heads
        dims = [in_dim + action_dim] + [hidden] * layers
        self.hidden = nn.ModuleList(
            EnsembleLinear(heads, i, o) for i, o in itertools.pairwise(dims)
        )
        self.out = EnsembleLinear(heads, dims[-1], 1)

    def forward(
        self,
        feat: torch.Tensor,
        prop: torch.Tensor | None,
        action: torch.Tensor,
        heads: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Q of every head [H, B], or of the heads in ``heads`` (long [K]) only: [K, B]."""
        count = self.heads if heads is None else heads.shape[0]
        x = torch.cat([feat, action], dim=-1).unsqueeze(0).expand(count, -1, -1)
        for layer in self.hidden:
            h = layer(x, heads)
            x = F.relu(F.layer_norm(h, h.shape[-1:]))  # LayerNorm without affine, per head
        with torch.autocast(x.device.type, enabled=False):  # Q itself in fp32 under bf16
            return self.out(x.float(), heads).squeeze(-1)


class SpatialEmbQ(nn.Module):
    """One pixel Q-head with the spatial-embedding fusion of IBRL.

    Patch features [B, P, D] are transposed to D channel rows of P values; action and
    proprioception are appended to every row and projected to ``emb`` (Linear + LN + ReLU);
    a learned per-channel weight [D, emb] makes a weighted sum over the D channels. The
    result, concatenated with proprioception and action again, goes through an MLP to Q [B].
    """

    def __init__(
        self,
        *,
        num_patches: int,
        patch_dim: int,
        prop_dim: int,
        action_dim: int,
        emb: int,
        hidden: int,
    ):
        super().__init__()
        extra = prop_dim + action_dim
        self.proj = nn.Sequential(nn.Linear(num_patches + extra, emb), nn.LayerNorm(emb), nn.ReLU())
        self.weight = nn.Parameter(torch.randn(1, patch_dim, emb) * 0.02)
        self.q = mlp(emb + extra, hidden, 2, 1, layer_norm=True)

    def forward(
        self, feat: torch.Tensor, prop: torch.Tensor | None, action: torch.Tensor
    ) -> torch.Tensor:
        extra = action if prop is None else torch.cat([prop, action], dim=-1)
        rows = feat.transpose(1, 2)  # [B, D, P]
        rows = torch.cat([rows, extra.unsqueeze(1).expand(-1, rows.shape[1], -1)], dim=-1)
        fused = (self.proj(rows) * self.weight).sum(dim=1)  # [B, emb]
        return self.q(torch.cat([fused, extra], dim=-1)).squeeze(-1)


class PixelCritic(nn.Module):
    """H independent spatial-embedding Q-heads -> [H, B]."""

    def __init__(self, heads: int, **kwargs: int):
        super().__init__()
        self.heads = heads
        self.qs = nn.ModuleList(SpatialEmbQ(**kwargs) for _ in range(heads))

    def forward(
        self,
        feat: torch.Tensor,
        prop: torch.Tensor | None,
        action: torch.Tensor,
        heads: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Q of every head [H, B], or of the heads in ``heads`` (long [K]) only: [K, B]."""
        qs = list(self.qs) if heads is None else [self.qs[i] for i in heads.tolist()]
        return torch.stack([q(feat, prop, action) for q in qs])


def min_of_random_heads(
    q: torch.Tensor, k: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Min over a random subset of ``k`` of the H heads of ``q`` [H, B] -> [B].

    One subset is drawn per call (shared by the batch), as in REDQ; with k >= H it is the
    min over all heads.
    """
    heads = q.shape[0]
    if k >= heads:
        return q.min(dim=0).values
    if generator is None:
        idx = torch.randperm(heads, device=q.device)[:k]
    else:
        idx = torch.randperm(heads, generator=generator)[:k].to(q.device)
    return q.index_select(0, idx).min(dim=0).values


def random_heads(heads: int, k: int, device: torch.device) -> torch.Tensor | None:
    """The random subset of ``k`` of ``heads`` critic heads that scores a proposal (long [k]),
    drawn as ``min_of_random_heads`` draws it; None when k >= heads (every head)."""
    if k >= heads:
        return None
    return torch.randperm(heads, device=device)[:k]


def min_q(
    critic: nn.Module,
    feat: torch.Tensor,
    prop: torch.Tensor | None,
    action: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """``min_of_random_heads(critic(feat, prop, action), k)`` [B], running only the k drawn
    heads: the same draw from the same generator, so the same value, at k/H of the cost."""
    count = getattr(critic, "heads", None)
    if not isinstance(count, int):  # a critic that cannot run a subset of its heads
        return min_of_random_heads(critic(feat, prop, action), k)
    heads = random_heads(count, k, feat.device)
    return critic(feat, prop, action, heads).min(dim=0).values


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak update: target <- (1 - tau) * target + tau * source (parameters only)."""
    tgt: list[torch.Tensor] = list(target.parameters())
    src: list[torch.Tensor] = list(source.parameters())
    torch._foreach_lerp_(tgt, src, tau)


class Networks(NamedTuple):
    """The RL networks of a learner config: ``critic`` scores (features, action) per head."""

    encoder: MultiCamViT | None  # None for state observations
    actor: nn.Module
    critic: nn.Module
    num_k: int  # heads the min is taken over when a proposal is scored


def actor_dropout(cfg: LearnerSettings) -> float:
    """The actor's dropout: ``actor_dropout`` for ibrl*, 0 for the rl and rlpd baselines
    (as the reference configs run them)."""
    return cfg.actor_dropout if selection_mode(cfg.method) != "rl" else 0.0


def build_networks(cfg: LearnerSettings, spec: ObsSpec) -> Networks:
    """Fresh (randomly initialised) encoder, actor and critic for ``cfg`` and ``spec``."""
    actor: nn.Module
    critic: nn.Module
    a_dim, s_dim = spec.action_dim, spec.state_dim
    dropout = actor_dropout(cfg)
    if not spec.pixels:
        actor = StateActor(s_dim, a_dim, cfg.hidden_dim, cfg.state_actor_layers, dropout)
        critic = EnsembleCritic(s_dim, a_dim, cfg.hidden_dim, cfg.critic_layers, cfg.num_q)
        return Networks(None, actor, critic, cfg.num_k)
    assert spec.image_shape is not None
    h, _, c = spec.image_shape
    vit = {"dim": cfg.vit_dim, "heads": cfg.vit_heads, "depth": cfg.vit_depth}
    encoder = MultiCamViT(list(spec.cameras), c, h, **vit)
    p, d = encoder.num_patches, cfg.vit_dim
    actor = PixelActor(
        p, d, s_dim, a_dim, compress=cfg.actor_compress, hidden=cfg.hidden_dim,
        layers=cfg.actor_layers, dropout=dropout,
    )  # fmt: skip
    critic = PixelCritic(
        cfg.pixel_num_q, num_patches=p, patch_dim=d, prop_dim=s_dim, action_dim=a_dim,
        emb=cfg.spatial_emb, hidden=cfg.hidden_dim,
    )  # fmt: skip
    return Networks(encoder, actor, critic, cfg.pixel_num_q)


def encode(
    normalizer: nn.Module, encoder: MultiCamViT | None, obs: Tensors, pad: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """-> (features, proprioception): state -> (normalised state, None); pixels ->
    (patch features [B, P, D], normalised state [B, S]); ``pad`` > 0 random-shifts images."""
    state = normalizer(obs["state"])
    if encoder is None:
        return state, None
    return encoder({c: obs[c] for c in encoder.cameras}, pad), state


def propose(
    critic: nn.Module,
    il: nn.Module | None,
    feat: torch.Tensor,
    prop: torch.Tensor | None,
    a_rl: torch.Tensor,
    *,
    obs: Tensors,
    mode: SelectionMode,
    num_k: int,
    beta: float,
    a_il: torch.Tensor | None = None,
    lcb: float | None = None,
    margin: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score the RL proposal (and, unless ``mode`` is rl, the IL proposal) with ``critic``
    (min over ``num_k`` random heads, only those heads run) and apply the selection rule.

    The IL proposal is ``a_il`` [B, A] when given (the replay's cache of ``il(obs)``), else
    ``il(obs)``. With ``lcb`` = kappa the rule compares the heads' confidence bound on the RL
    proposal's advantage instead (``advantage_lcb``). With ``margin`` the RL proposal must win
    by more than that (its Q, or with ``lcb`` its bound, above the IL proposal's + margin). The
    returned Q values stay the min over ``num_k`` random heads, without the margin.

    Returns (action [B, A], use_il [B], q_chosen [B], q_rl [B], q_il [B] (NaN for rl)).
    """
    if mode == "rl":
        q_rl = min_q(critic, feat, prop, a_rl, num_k).float()
        action, use_il, q = select_proposal("rl", a_rl, q_rl)
        return action, use_il, q, q_rl, torch.full_like(q_rl, float("nan"))
    if a_il is None:
        if il is None:
            raise ValueError(f"selection mode {mode!r} needs an IL policy")
        a_il = il_proposal(critic, il, feat, prop, obs=obs, num_k=num_k)
    a_il = a_il.to(a_rl.dtype)
    b = a_rl.shape[0]
    both = torch.cat([a_rl, a_il])
    feat2 = torch.cat([feat, feat])
    prop2 = None if prop is None else torch.cat([prop, prop])
    if lcb is None:
        q = min_q(critic, feat2, prop2, both, num_k).float()
        q_rl, q_il = q[:b], q[b:]
        score_rl, score_il = q_rl, q_il + margin
    else:  # the same greedy / soft rule, on the bound against the margin
        heads = critic(feat2, prop2, both).float()  # [H, 2B]
        q = min_of_random_heads(heads, num_k)
        q_rl, q_il = q[:b], q[b:]
        score_rl = advantage_lcb(heads[:, :b], heads[:, b:], lcb)
        score_il = torch.full_like(score_rl, margin)
    action, use_il, _ = select_proposal(mode, a_rl, score_rl, a_il, score_il, beta=beta)
    return action, use_il, torch.where(use_il, q_il, q_rl), q_rl, q_il


def advantage_lcb(q_rl: torch.Tensor, q_il: torch.Tensor, kappa: float) -> torch.Tensor:
    """A lower confidence bound on Q(s, a_RL) - Q(s, a_IL) from the critic heads [H, B] -> [B]:
    mean - kappa * std over the heads of the per-head differences.

    Positive only where the heads agree that the RL proposal is better; an untrained or
    disagreeing ensemble (an RL action far from the data) leaves the IL proposal in charge.
    """
    diff = q_rl - q_il
    return diff.mean(dim=0) - kappa * diff.std(dim=0)


def il_proposal(
    critic: nn.Module,
    il: nn.Module,
    feat: torch.Tensor,
    prop: torch.Tensor | None,
    *,
    obs: Tensors,
    num_k: int,
) -> torch.Tensor:
    """The IL proposal [B, A]: ``il(obs)`` (its deterministic action), or, when the policy's
    ``proposal_samples`` is K > 1, of K samples ``il.sample(obs, K)`` the one ``critic``
    scores highest (min over ``num_k`` random heads)."""
    k = int(getattr(il, "proposal_samples", 1))
    if k <= 1:
        return il(obs)
    policy: Any = il  # an ILPolicy (learner.il): the core does not import it
    samples = policy.sample(obs, k)  # [K, B, A]
    b = samples.shape[1]
    feat_k = feat.repeat(k, *([1] * (feat.dim() - 1)))
    prop_k = None if prop is None else prop.repeat(k, 1)
    action = samples.reshape(k * b, -1).to(feat.dtype)
    q = min_of_random_heads(critic(feat_k, prop_k, action), num_k).view(k, b)
    return samples[q.argmax(0), torch.arange(b, device=samples.device)]


def exploration_std(cfg: LearnerSettings, env_steps: int) -> float:
    """Exploration (and target smoothing) std: linear schedule over env steps."""
    frac = min(1.0, env_steps / cfg.stddev_steps)
    return cfg.stddev_max + frac * (cfg.stddev_min - cfg.stddev_max)


def autocast(
    bf16: bool, device: torch.device, *, acting: bool = False
) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast when ``bf16`` (``learner.bf16``), a no-op otherwise.

    On the CPU only for updates: acting (``acting``) runs one observation at a time, where
    casting the weights costs more than the bf16 matmuls save, and stays fp32. The matmuls
    accumulate in fp32 either way, and the state critic's output layer runs in fp32.
    """
    enabled = bf16 and (device.type == "cuda" or not acting)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
