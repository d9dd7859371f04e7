"""How unsure an acting policy is of the action it takes, one number per step.

Every candidate is >= 0 and larger means less sure. Shapes: B = batch, A = action dim,
H = critic heads. All are computed from what acting already holds (the critic ensemble, the
IL and RL proposals and their Q values, dropout in the actor). ``bench/uncertainty.py``
measures how well each predicts a failed rollout (ROC AUC on recorded sim:lift rollouts);
``mc_dropout`` predicted best (bench/README.md) and is ``CHOSEN``: the one the bridge's
policy reports (``learner.acting.BundlePolicy``, ``info["uncertainty"]``).

* ``q_std``: disagreement of the critic ensemble, the standard deviation over the H heads
  of Q(s, a) at the chosen action. Zero when every head agrees.
* ``q_gap``: |Q_IL - Q_RL|, how far apart the critic rates the two proposals.
* ``action_gap``: RMS over action dims of a_IL - a_RL, how far apart the proposals are.
* ``mc_dropout``: RMS over action dims of the std of the RL actor's action over K forward
  passes with its dropout on (MC dropout); zero for an actor without dropout.
* ``il_spread``: the spread of a stochastic IL policy's action distribution, for an IL kind
  that exposes one (a ``spread(obs) -> [B]`` method, see ``SpreadPolicy``); None otherwise.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import torch
from torch import nn

Signal = Literal["q_std", "q_gap", "action_gap", "mc_dropout", "il_spread"]
SIGNALS: tuple[Signal, ...] = ("q_std", "q_gap", "action_gap", "mc_dropout", "il_spread")
CHOSEN: Signal = "mc_dropout"  # by measurement: bench/README.md, "uncertainty.py"
MC_SAMPLES = 8


@runtime_checkable
class SpreadPolicy(Protocol):
    """An IL policy whose action distribution has a spread (Gaussian, mixture, diffusion...)."""

    def spread(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Spread of the action distribution at ``obs``, [B], >= 0 (e.g. RMS std over A)."""
        ...


def head_std(q_heads: torch.Tensor) -> torch.Tensor:
    """Population standard deviation over the heads of ``q_heads`` [H, B] -> [B]."""
    if q_heads.dim() != 2 or q_heads.shape[0] < 1:
        raise ValueError(f"q_heads must be [H, B] with H >= 1, got {tuple(q_heads.shape)}")
    return q_heads.float().std(dim=0, correction=0)


def ensemble_disagreement(
    critic: nn.Module, feat: torch.Tensor, prop: torch.Tensor | None, action: torch.Tensor
) -> torch.Tensor:
    """``q_std``: std over the critic's heads of Q(feat, action) [B, A] -> [B]."""
    return head_std(critic(feat, prop, action))


def q_gap(q_il: torch.Tensor, q_rl: torch.Tensor) -> torch.Tensor:
    """``q_gap``: |Q_IL - Q_RL| [B] (NaN where there is no IL proposal)."""
    return (q_il.float() - q_rl.float()).abs()


def action_gap(a_il: torch.Tensor, a_rl: torch.Tensor) -> torch.Tensor:
    """``action_gap``: RMS over the action dims of a_IL - a_RL, [B, A] -> [B]."""
    return (a_il.float() - a_rl.float()).pow(2).mean(dim=-1).sqrt()


@torch.no_grad()
def mc_dropout(
    actor: nn.Module,
    feat: torch.Tensor,
    prop: torch.Tensor | None,
    samples: int = MC_SAMPLES,
    *,
    rng: torch.Generator | None = None,
) -> torch.Tensor:
    """``mc_dropout``: RMS over A of the std of ``actor(feat, prop)`` over ``samples`` passes
    with dropout on, [B]; 0 for an actor without dropout.

    ``rng`` (a CPU generator, for an actor on the CPU): the dropout masks are drawn from it
    in a forked RNG, so acting's own random numbers (exploration noise, soft selection) are
    left as they were and the signal is reproducible from the generator's seed. The actor
    is put back in the mode it was in.
    """
    if samples < 2:
        raise ValueError(f"MC dropout needs at least 2 samples, got {samples}")
    was_training = actor.training
    own = rng is not None and feat.device.type == "cpu"
    with torch.random.fork_rng(devices=[], enabled=own):
        if own:
            assert rng is not None
            torch.default_generator.set_state(rng.get_state())
        actor.train()
        try:  # one batched pass: every row draws its own dropout mask
            many = feat.repeat(samples, *([1] * (feat.dim() - 1)))
            props = None if prop is None else prop.repeat(samples, 1)
            actions = actor(many, props).float().unflatten(0, (samples, feat.shape[0]))
        finally:
            actor.train(was_training)
        if own:
            assert rng is not None
            rng.set_state(torch.default_generator.get_state())
    return actions.std(dim=0, correction=0).pow(2).mean(dim=-1).sqrt()


def il_spread(il: nn.Module | None, obs: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """``il_spread``: the IL policy's own spread [B], or None when its kind has none."""
    if il is None or not isinstance(il, SpreadPolicy):
        return None
    spread = il.spread(obs).float()
    if spread.dim() != 1:
        raise ValueError(f"{type(il).__name__}.spread must return [B], got {tuple(spread.shape)}")
    return spread


class Proposed(Protocol):
    """What acting computed for a batch (``learner.acting.Proposal``)."""

    action: torch.Tensor  # [B, A], the action taken
    a_rl: torch.Tensor  # [B, A]
    mu: torch.Tensor  # [B, A], the RL actor's action without exploration noise
    q_rl: torch.Tensor  # [B]
    q_il: torch.Tensor  # [B], NaN without an IL proposal
    feat: torch.Tensor
    prop: torch.Tensor | None
    obs: dict[str, torch.Tensor]


class ActingNets(Protocol):
    """The networks acting holds (``learner.acting.RLNets``)."""

    critic: nn.Module
    actor: nn.Module
    il: nn.Module | None


@torch.no_grad()
def all_signals(
    nets: ActingNets, p: Proposed, rng: torch.Generator | None = None
) -> dict[Signal, torch.Tensor | None]:
    """Every candidate for a batch acting proposed, [B] each (None where it does not exist:
    no IL proposal, or an IL kind without a spread). For measuring; acting computes one."""
    a_il = None if nets.il is None else nets.il(p.obs).to(p.a_rl.dtype)
    return {
        "q_std": ensemble_disagreement(nets.critic, p.feat, p.prop, p.action),
        "q_gap": None if a_il is None else q_gap(p.q_il, p.q_rl),
        "action_gap": None if a_il is None else action_gap(a_il, p.mu),
        "mc_dropout": mc_dropout(nets.actor, p.feat, p.prop, rng=rng),
        "il_spread": il_spread(nets.il, p.obs),
    }
