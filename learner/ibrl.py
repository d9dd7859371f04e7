"""The IBRL agent: TD3 backbone + frozen IL policy, with one proposal-selection rule.

Batches are dicts of tensors on the agent's device: ``obs``/``next_obs`` (observation dicts,
see ``learner.obs``), ``action`` [B, A], ``reward`` [B] (n-step return), ``discount`` [B]
(gamma**m, 0 at a terminal). Updates return flat metric dicts (names in docs/metrics.md).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import nn

from learner import networks, runtime
from learner.encoders import MultiCamViT
from learner.il import ILPolicy
from learner.networks import (
    StateActor,
    actor_dropout,
    build_networks,
    exploration_std,
    sample_action,
    soft_update,
)
from learner.obs import Normalizer, ObsSpec
from learner.proto.artifact import load_encoder, load_proto
from learner.proto.model import ProtoLearner
from learner.selection import SelectionMode, selection_mode
from tandem.settings.learner import LearnerSettings

Tensors = dict[str, torch.Tensor]
__all__ = [
    "ActingNets", "IBRLAgent", "actor_dropout", "copy_acting_nets", "init_actor_from_il",
    "resolve_device", "selection_mode", "sync_acting_nets", "to_floats",
]  # fmt: skip
MODULES = ("normalizer", "encoder", "actor", "critic", "actor_target", "critic_target", "il")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class IBRLAgent:
    """Actor, critic (+ targets), optional ViT encoder and the frozen IL policy."""

    def __init__(
        self,
        cfg: LearnerSettings,
        spec: ObsSpec,
        il: ILPolicy | None,
        device: torch.device | str = "cpu",
    ):
        self.cfg, self.spec, self.device = cfg, spec, torch.device(device)
        self.mode = selection_mode(cfg.method)
        if self.mode != "rl" and il is None:
            raise ValueError(f"method {cfg.method!r} needs an IL policy")
        self.normalizer = Normalizer(spec.state_dim, cfg.state_norm_clip)
        self.encoder, self.actor, self.critic, self.num_k = build_networks(cfg, spec)
        if cfg.actor_init == "il" and il is not None:
            init_actor_from_il(self.actor, il)
        self.encoder_frozen = False
        if cfg.encoder_init and self.encoder is not None:
            load_encoder(self.encoder, cfg.encoder_init, cfg, spec)
            self.encoder_frozen = cfg.encoder_init_mode == "frozen"
            self.encoder.requires_grad_(not self.encoder_frozen)
        self.proto: ProtoLearner | None = None  # the curiosity bonus's representation
        if cfg.intrinsic_bonus > 0:
            if not spec.pixels or cfg.encoder_init is None:
                raise ValueError("intrinsic_bonus > 0 needs pixel observations and encoder_init")
            self.proto = load_proto(cfg.encoder_init, cfg, spec, self.device)
        self.actor_target = _frozen_copy(self.actor)
        self.critic_target = _frozen_copy(self.critic)
        self.il = il
        if il is not None:
            il.eval().requires_grad_(False)
        for name in MODULES:
            module = getattr(self, name)
            if module is not None:
                module.to(self.device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self._critic_params(), lr=cfg.lr)
        self.num_updates = 0
        self.env_steps = 0
        if self.device.type == "cuda":
            self._cuda_layout()
        if cfg.compile and (self.device.type == "cuda" or cfg.compile_on_cpu):
            self.compile_networks(cfg.compile_mode)

    def _critic_params(self) -> list[nn.Parameter]:
        params = list(self.critic.parameters())
        if self.encoder is not None and not self.encoder_frozen:
            params += list(self.encoder.parameters())
        return params

    def share_encoder(self, encoder: MultiCamViT) -> None:
        """Act and learn on ``encoder`` (trained elsewhere, e.g. by Proto-RL) instead of the
        agent's own: the RL losses read its features without gradient (frozen here)."""
        if self.encoder is None:
            raise ValueError("share_encoder needs a pixel agent")
        self.encoder = encoder.to(self.device)
        self.encoder_frozen = True
        self.critic_opt = torch.optim.Adam(self._critic_params(), lr=self.cfg.lr)

    def compile_networks(self, mode: str = "default") -> None:
        """``torch.compile`` the networks an update runs (``mode`` as torch.compile's;
        ``reduce-overhead`` replays CUDA graphs)."""
        nets = (self.encoder, self.actor, self.actor_target, self.critic, self.critic_target)
        for module in nets:
            if module is not None:
                module.compile(mode=mode)

    def _cuda_layout(self) -> None:
        """TF32 (``tf32``) and convolutions in channels_last (the images arrive NHWC, so no
        copy) on CUDA."""
        runtime.set_tf32(self.cfg.tf32)
        if not self.cfg.channels_last:
            return
        for module in (self.encoder, self.il):
            if module is not None:
                module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    # ------------------------------------------------------------------ helpers
    def stddev(self) -> float:
        """Exploration (and target smoothing) std: linear schedule over env steps."""
        return exploration_std(self.cfg, self.env_steps)

    def autocast(self, *, acting: bool = False) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast when ``learner.bf16`` is on (``networks.autocast``: on the CPU only
        for updates, not ``acting``); a no-op otherwise."""
        return networks.autocast(self.cfg.bf16, self.device, acting=acting)

    def encode(self, obs: Tensors, augment: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (features, proprioception): state -> (normalised state, None); pixels ->
        (patch features [B, P, D], normalised state [B, S])."""
        pad = self.cfg.shift_pad if augment else 0
        # a frozen encoder gives features without a graph: no RL gradient reaches it
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            return networks.encode(self.normalizer, self.encoder, obs, pad)

    def propose(
        self,
        feat: torch.Tensor,
        prop: torch.Tensor | None,
        a_rl: torch.Tensor,
        obs: Tensors,
        critic: nn.Module,
        *,
        mode: SelectionMode | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score the RL proposal (and the IL proposal for ibrl*) with ``critic`` (min over
        ``num_k`` random heads) and apply the selection rule (the agent's, or ``mode``).

        Returns (action [B, A], use_il [B], q_chosen [B], q_rl [B], q_il [B] (NaN for rl)).
        """
        rule: SelectionMode = "rl" if self.mode == "rl" else mode or self.mode
        return networks.propose(
            critic, self.il, feat, prop, a_rl, obs=obs, mode=rule, num_k=self.num_k,
            beta=self.cfg.soft_beta, lcb=self.cfg.select_lcb, margin=self.cfg.select_margin,
        )  # fmt: skip

    # ------------------------------------------------------------------ acting
    def acting_nets(self) -> ActingNets:
        """The modules acting reads (the agent's own; ``copy_acting_nets`` makes copies)."""
        return ActingNets(self.normalizer, self.encoder, self.actor, self.critic_target)

    @torch.no_grad()
    def act(
        self,
        obs: Tensors,
        *,
        explore: bool,
        mode: SelectionMode | None = None,
        nets: ActingNets | None = None,
    ) -> tuple[torch.Tensor, Tensors]:
        """Actions [B, A] for a batch of observations and info tensors.

        The actor runs without dropout; exploration noise (when ``explore``) only on the RL
        proposal; both proposals are scored with the target critic. ``mode`` overrides the
        selection rule (``ibrl`` scores an ibrl_soft agent greedily); ``nets`` acts with
        copies of the acting modules (``copy_acting_nets``) instead of the agent's own, so a
        learner thread may update those meanwhile. Info: ``use_il`` [B] bool, ``q_rl``,
        ``q_il`` [B].
        """
        nets = nets or self.acting_nets()
        nets.actor.eval()
        with self.autocast(acting=True):
            feat, prop = networks.encode(nets.normalizer, nets.encoder, obs, 0)
            mu = nets.actor(feat, prop)
            a_rl = sample_action(mu, self.stddev(), None) if explore else mu
            action, use_il, _, q_rl, q_il = self.propose(
                feat, prop, a_rl, obs, nets.critic, mode=mode
            )
        return action.float(), {"use_il": use_il, "q_rl": q_rl, "q_il": q_il}

    # ------------------------------------------------------------------ learning
    @torch.no_grad()
    def bootstrap_target(
        self,
        next_obs: Tensors,
        reward: torch.Tensor,
        discount: torch.Tensor,
        next_il_action: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """TD target y = R^(n) + discount * Q'(s', a*) with a* chosen between the target
        actor's smoothed action (dropout on) and the IL action by the selection rule.

        The IL action is ``next_il_action`` [B, A] when given (the replay's cache of
        ``il(next_obs)``, see ``learner.replay``), else computed here. Returns (y [B],
        use_il [B]).
        """
        feat, prop = self.encode(next_obs, augment=True)
        self.actor_target.train()
        mu = self.actor_target(feat, prop)
        a_rl = sample_action(mu, self.stddev(), self.cfg.stddev_clip)
        rule: SelectionMode = "rl" if self.mode == "rl" else self.mode
        _, use_il, q, _, _ = networks.propose(
            self.critic_target, self.il, feat, prop, a_rl, obs=next_obs, mode=rule,
            num_k=self.num_k, beta=self.cfg.soft_beta, a_il=next_il_action,
            lcb=self.cfg.select_lcb, margin=self.cfg.select_margin,
        )  # fmt: skip
        return reward + discount * q, use_il

    def update_critic(self, batch: dict[str, Any]) -> dict[str, float]:
        """One critic (+ encoder) step and a Polyak step of the target critic."""
        metrics, _, _ = self._critic_step(batch)
        return to_floats(metrics)

    def update_actor(self, batch: dict[str, Any]) -> dict[str, float]:
        """One actor step on detached features and a Polyak step of the target actor."""
        with torch.no_grad(), self.autocast():
            feat, prop = self.encode(batch["obs"], augment=True)
        return to_floats(self._actor_step(feat, prop))

    def update(self, batches: list[dict[str, Any]]) -> dict[str, float]:
        """One update call: a critic step per batch, the actor step on the last batch."""
        return to_floats(self.update_tensors(batches))

    def update_tensors(self, batches: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """``update`` without a host sync: the metrics stay 0-d tensors on the device (read
        them with ``to_floats`` every N calls, not after each)."""
        metrics: dict[str, torch.Tensor] = {}
        feat: torch.Tensor | None = None
        prop: torch.Tensor | None = None
        for batch in batches:
            metrics, feat, prop = self._critic_step(batch)
        assert feat is not None
        metrics.update(self._actor_step(feat, prop))
        return metrics

    def _critic_step(
        self, batch: dict[str, Any]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        reward, bonus = self._bonus_reward(batch)
        with self.autocast():
            target, use_il = self.bootstrap_target(
                batch["next_obs"], reward, batch["discount"], batch.get("next_il_action")
            )
            feat, prop = self.encode(batch["obs"], augment=True)
            q = self.critic(feat, prop, batch["action"]).float()
        loss = (q - target.float().unsqueeze(0)).pow(2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        self.num_updates += 1
        metrics = {
            "critic/loss": loss.detach(),
            "critic/q_mean": q.detach().mean(),
            "critic/target_mean": target.float().mean(),
            "ibrl/bc_selected_frac_target": use_il.float().mean(),
        }
        if bonus is not None:
            metrics["proto/intrinsic_reward"] = bonus.mean()
        return metrics, feat.detach(), None if prop is None else prop.detach()

    def _bonus_reward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(reward + intrinsic_bonus * r_int(next_obs), r_int), or (reward, None) when off.

        r_int is the Proto-RL kNN novelty of the batch's next observation (its queue keeps
        moving); with n-step returns it is added once, for the bootstrap observation.
        """
        if self.proto is None:
            return batch["reward"], None
        r_int = self.proto.intrinsic_reward(batch["next_obs"])
        return batch["reward"] + self.cfg.intrinsic_bonus * r_int, r_int

    def _actor_step(self, feat: torch.Tensor, prop: torch.Tensor | None) -> dict[str, torch.Tensor]:
        self.actor.train()
        self.critic.requires_grad_(False)  # the actor loss needs no critic weight gradients
        try:
            with self.autocast():
                mu = self.actor(feat, prop)
                action = sample_action(mu, self.stddev(), self.cfg.stddev_clip)
                q = self.critic(feat, prop, action).float().min(dim=0).values
            loss = -q.mean()
            self.actor_opt.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            self.critic.requires_grad_(True)
        self.actor_opt.step()
        soft_update(self.actor_target, self.actor, self.cfg.tau)
        return {"actor/loss": loss.detach(), "actor/stddev": torch.tensor(self.stddev())}

    # ------------------------------------------------------------------ state
    def modules(self) -> Iterator[tuple[str, nn.Module]]:
        for name in MODULES:
            module = getattr(self, name)
            if module is not None:
                yield name, module

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, IL policy, normaliser, optimisers and counters (tensors,
        numbers, lists and dicts only; loadable with ``torch.load(weights_only=True)``)."""
        state: dict[str, Any] = {name: m.state_dict() for name, m in self.modules()}
        state["actor_opt"] = self.actor_opt.state_dict()
        state["critic_opt"] = self.critic_opt.state_dict()
        state["counters"] = {"num_updates": self.num_updates, "env_steps": self.env_steps}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, module in self.modules():
            module.load_state_dict(state[name])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.num_updates = int(state["counters"]["num_updates"])
        self.env_steps = int(state["counters"]["env_steps"])


class ActingNets(NamedTuple):
    """The modules that acting reads."""

    normalizer: nn.Module
    encoder: MultiCamViT | None
    actor: nn.Module
    critic: nn.Module  # the target critic: it scores the proposals


def copy_acting_nets(nets: ActingNets) -> ActingNets:
    """Frozen copies of ``nets`` (refresh them with ``sync_acting_nets``)."""
    encoder = None if nets.encoder is None else copy.deepcopy(nets.encoder).requires_grad_(False)
    return ActingNets(
        _frozen_copy(nets.normalizer), encoder, _frozen_copy(nets.actor), _frozen_copy(nets.critic)
    )


@torch.no_grad()
def sync_acting_nets(dst: ActingNets, src: ActingNets) -> None:
    """Copy the parameters and buffers of ``src`` into ``dst`` (same architectures)."""
    for d, s in zip(dst, src, strict=True):
        if d is None or s is None:
            continue
        dst_state, src_state = d.state_dict(), s.state_dict()
        torch._foreach_copy_(list(dst_state.values()), [src_state[k] for k in dst_state])


def to_floats(metrics: dict[str, torch.Tensor]) -> dict[str, float]:
    """0-d metric tensors -> floats with one host transfer per device."""
    if not metrics:
        return {}
    keys = list(metrics)
    device = (
        next(v.device for v in metrics.values() if v.device.type != "cpu")
        if any(v.device.type != "cpu" for v in metrics.values())
        else torch.device("cpu")
    )
    values = torch.stack([metrics[k].detach().float().to(device) for k in keys]).tolist()
    return dict(zip(keys, values, strict=True))


def init_actor_from_il(actor: nn.Module, il: ILPolicy) -> None:
    """Start a state actor as the IL policy: copy its Linear layers in order.

    Both are MLPs on the demo-normalised state ending in tanh; the actor's dropout layers
    carry no weights. Raises ValueError when the two do not have the same layer shapes
    (pixel observations, or another width or depth).
    """
    mine = [m for m in actor.modules() if isinstance(m, nn.Linear)]
    theirs = [m for m in il.head.modules() if isinstance(m, nn.Linear)]
    shapes = [m.weight.shape for m in mine]
    if not isinstance(actor, StateActor) or shapes != [m.weight.shape for m in theirs]:
        raise ValueError(
            "actor_init = 'il' needs state observations and an actor with the IL policy's "
            "width and depth (hidden_dim = bc_hidden_dim, state_actor_layers = bc_layers)"
        )
    with torch.no_grad():
        for dst, src in zip(mine, theirs, strict=True):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)


def _frozen_copy(module: nn.Module) -> nn.Module:
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target
