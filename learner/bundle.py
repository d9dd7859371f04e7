"""Policy bundles: the small artefact the bridge's policy slot loads to act.

A bundle is one safetensors blob: tensors of the networks needed for acting (IL policy, actor,
target critic, encoder, normaliser) and, in its metadata under ``tandem_config``, the JSON
config to rebuild them. Its sha256 goes into ``tandem.messages.PolicyWeights``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save as st_save

from learner.bc import BCPolicy
from learner.ibrl import IBRLAgent
from learner.obs import ObsSpec, Stacker, to_torch
from tandem.settings.learner import LearnerSettings

BUNDLE_FORMAT = 1
ACT_MODULES = ("normalizer", "encoder", "actor", "critic_target")
MAX_HEADER_BYTES = 100 * 2**20


class BundleError(ValueError):
    """A policy bundle is malformed or from another format version."""


def make_bundle(
    cfg: LearnerSettings,
    spec: ObsSpec,
    *,
    agent: IBRLAgent | None,
    il: BCPolicy | None,
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


def read_bundle(
    data: bytes | memoryview | str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (tensors, config) from bundle bytes (or a view of them) or a file path.

    Bytes are spilled to a temporary file (in RAM where ``/dev/shm`` exists) and
    loaded from there: parsing a 100+ MB blob in memory (``safetensors.torch.load``)
    holds the GIL for hundreds of milliseconds and stalls the bridge's control loop,
    while writing and memory-mapping the file does not.
    """
    if isinstance(data, str | Path):
        return _read_file(Path(data))
    for spill_dir in (*_SHM, None):  # /dev/shm may be too small (64 MB in a container)
        try:
            with tempfile.NamedTemporaryFile(suffix=".safetensors", dir=spill_dir) as spill:
                spill.write(data)
                spill.flush()
                return _read_file(Path(spill.name))
        except OSError as exc:
            failure = exc
    raise BundleError(f"cannot spill the bundle to a temporary file: {failure}")


_SHM = ("/dev/shm",) if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else ()


def _read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        with path.open("rb") as file:
            (header_len,) = struct.unpack("<Q", file.read(8))
            if header_len > MAX_HEADER_BYTES:
                raise ValueError(f"header of {header_len} bytes")
            header = json.loads(file.read(header_len))
        config = json.loads(header["__metadata__"]["tandem_config"])
        tensors = st_load_file(path)
    except (struct.error, KeyError, ValueError, TypeError, OSError, SafetensorError) as exc:
        raise BundleError(f"not a policy bundle: {exc}") from None
    if config.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"bundle format {config.get('format')} != {BUNDLE_FORMAT}")
    return tensors, config


class Policy:
    """Acting policy of a bundle: ``act(obs, explore) -> (action, info)``.

    ``obs`` is an env observation (a state array, or a dict with ``"state"`` and camera
    images). Frame/state stacking is kept internally; call ``reset()`` at an episode start.
    ``explore`` adds the agent's exploration noise to the RL proposal only (training
    rollouts, as ``IBRLAgent.act``); the IL proposal is never noised, and ``explore=False``
    (evaluation) is deterministic. An IL-only bundle (``il_only``: warm-up, or method bc)
    acts with the IL policy alone. ``info``: ``proposal`` ("il" or "rl"), ``q_il``,
    ``q_rl`` (NaN when not computed).
    """

    def __init__(
        self, tensors: dict[str, torch.Tensor], config: dict[str, Any], device: str = "cpu"
    ):
        self.config = config
        self.method = config["method"]
        self.spec = ObsSpec.from_json(config["spec"])
        self.cfg = LearnerSettings.model_validate(config["learner"])
        self.device = torch.device(device)
        self.il: BCPolicy | None = None
        if config["il_arch"] is not None:
            self.il = BCPolicy(self.spec, **config["il_arch"])
            self.il.load_state_dict(_section(tensors, "il"))
            self.il.eval().to(self.device)
        self.il_only = bool(config.get("il_only", False)) or self.method == "bc"
        self.agent: IBRLAgent | None = None
        if not self.il_only:
            il = self.il if self.method in ("ibrl", "ibrl_soft") else None
            self.agent = IBRLAgent(self.cfg, self.spec, il, self.device)
            for name, module in self.agent.modules():
                if name in ACT_MODULES:
                    module.load_state_dict(_section(tensors, name))
            self.agent.env_steps = int(config.get("env_steps", 0))
        self._stacker = Stacker(self.spec)
        self._fresh = True

    def reset(self) -> None:
        """Forget the stacked history (start of an episode)."""
        self._fresh = True

    @torch.no_grad()
    def act(self, obs: Any, explore: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
        """Action (A,) float32 in [-1, 1] for one observation, and the selection info."""
        raw = obs if isinstance(obs, dict) else {"state": np.asarray(obs, np.float32).ravel()}
        stacked = self._stacker.reset(raw) if self._fresh else self._stacker.step(raw)
        self._fresh = False
        batch = to_torch(stacked, self.device)
        if self.agent is None:
            assert self.il is not None
            action = self.il(batch)[0]
            return action.cpu().numpy(), {
                "proposal": "il",
                "q_il": float("nan"),
                "q_rl": float("nan"),
            }
        action, info = self.agent.act(batch, explore=explore)
        proposal = "il" if bool(info["use_il"][0]) else "rl"
        return action[0].cpu().numpy(), {
            "proposal": proposal,
            "q_il": float(info["q_il"][0]),
            "q_rl": float(info["q_rl"][0]),
        }


def _section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    start = prefix + "."
    return {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}


def load_policy(data: bytes | memoryview | str | Path, device: str = "cpu") -> Policy:
    """Load a bundle (bytes or file path) into an acting ``Policy``."""
    tensors, config = read_bundle(data)
    return Policy(tensors, config, device)
