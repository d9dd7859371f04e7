"""IBRL's proposal selection: the one rule used when acting and in the TD target."""

from __future__ import annotations

from typing import Literal

import torch

SelectionMode = Literal["ibrl", "ibrl_soft", "rl"]


def selection_mode(method: str) -> SelectionMode:
    """The selection rule of a method: ibrl and ibrl_soft use theirs, the rest plain RL."""
    return "ibrl" if method == "ibrl" else "ibrl_soft" if method == "ibrl_soft" else "rl"


def select_proposal(
    mode: SelectionMode,
    a_rl: torch.Tensor,
    q_rl: torch.Tensor,
    a_il: torch.Tensor | None = None,
    q_il: torch.Tensor | None = None,
    *,
    beta: float = 10.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose per sample between the RL proposal and the IL proposal.

    Args:
        mode: ``ibrl`` takes the proposal with the higher Q (ties go to RL), ``ibrl_soft``
            samples the IL proposal with probability softmax(beta * [q_rl, q_il])[1], ``rl``
            always takes the RL proposal (``a_il``/``q_il`` may then be None).
        a_rl, a_il: proposals, [B, A].
        q_rl, q_il: their scores (target critic, min over heads), [B].

    Returns:
        (action [B, A], use_il [B] bool, q of the chosen proposal [B]).
    """
    if mode == "rl":
        return a_rl, torch.zeros_like(q_rl, dtype=torch.bool), q_rl
    if a_il is None or q_il is None:
        raise ValueError(f"selection mode {mode!r} needs the IL proposal and its Q value")
    if mode == "ibrl":
        use_il = q_il > q_rl
    elif mode == "ibrl_soft":
        logits = beta * torch.stack([q_rl, q_il], dim=-1).float()
        p_il = torch.softmax(logits, dim=-1)[..., 1]
        u = torch.rand(p_il.shape, generator=generator, device=p_il.device)
        use_il = u < p_il
    else:
        raise ValueError(f"unknown selection mode {mode!r}")
    action = torch.where(use_il.unsqueeze(-1), a_il, a_rl)
    q = torch.where(use_il, q_il, q_rl)
    return action, use_il, q
