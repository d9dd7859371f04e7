"""Policy bundles: writing the small artefact the bridge's policy slot loads to act.

A bundle is one safetensors blob: tensors of the networks needed for acting (IL policy, actor,
target critic, encoder, normaliser) and, in its metadata under ``tandem_config``, the JSON
config to rebuild them. Its sha256 goes into ``tandem.messages.PolicyWeights``. The format
and its reader are ``learner.acting``'s (``read_bundle``, ``load_policy``): the acting side
must not need this module, which knows the training agent.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from safetensors.torch import save as st_save

from learner.acting import ACT_MODULES, BUNDLE_FORMAT
from learner.ibrl import IBRLAgent
from learner.il import ILPolicy
from learner.obs import ObsSpec
from tandem.settings.learner import LearnerSettings

__all__ = ["make_bundle", "sha256"]


def make_bundle(
    cfg: LearnerSettings,
    spec: ObsSpec,
    *,
    agent: IBRLAgent | None,
    il: ILPolicy | None,
    il_only: bool = False,
) -> tuple[bytes, dict[str, Any]]:
    """Serialise what acting needs; returns (blob, config).

    ``agent`` None = bc policy. ``il_only``: the policy acts with ``il`` alone whatever the
    method (the IL-only warm-up before the hybrid acts); the agent is left out.
    """
    if il_only and il is None:
        raise ValueError("an IL-only bundle needs the IL policy")
    tensors: dict[str, torch.Tensor] = {}
    if agent is not None and not il_only:
        for name, module in agent.modules():
            if name in ACT_MODULES:
                tensors.update(_prefixed(name, module.state_dict()))
    if il is not None:
        tensors.update(_prefixed("il", il.state_dict()))
    config = {
        "format": BUNDLE_FORMAT,
        "method": cfg.method,
        "learner": cfg.model_dump(mode="json"),
        "spec": spec.to_json(),
        "il_arch": None if il is None else il.arch,
        "il_only": il_only,
        "env_steps": 0 if agent is None else int(agent.env_steps),  # exploration schedule
    }
    blob = st_save(tensors, metadata={"tandem_config": json.dumps(config)})
    return blob, config


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous().clone() for k, v in state.items()}
