"""The acting-only policy of a bundle: the robot bridge and the learner both act through it.

A policy bundle is one safetensors blob: the tensors of the networks that acting needs
(IL policy, actor, the trainer's target critic, encoder, normaliser) and, in its metadata
under ``tandem_config``, the JSON config to rebuild them. ``learner.bundle.make_bundle``
writes one; this module reads it (``read_bundle``) and acts with it (``load_policy``).

Only inference networks are built here: no optimiser, no target copies, no replay. The
networks are made and run by the same functions as the training agent's
(``learner.networks``: ``build_networks``, ``encode``, ``propose``), so a bundle acts as the
agent it came from does in evaluation. This module imports none of the training code
(``learner.ibrl``, ``learner.train``, ``learner.service``).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as st_load_file
from torch import nn

from learner.encoders import MultiCamViT
from learner.il import ILPolicy, build_il
from learner.networks import (
    autocast,
    build_networks,
    encode,
    exploration_std,
    propose,
    sample_action,
)
from learner.obs import Normalizer, ObsSpec, Stacker, to_torch
from learner.selection import SelectionMode, selection_mode
from learner.uncertainty import il_spread, mc_dropout
from tandem.settings.learner import LearnerSettings

BUNDLE_FORMAT = 1
ACT_MODULES = ("normalizer", "encoder", "actor", "critic_target")  # sections besides "il"
MAX_HEADER_BYTES = 100 * 2**20
_NAN = float("nan")


class BundleError(ValueError):
    """A policy bundle is malformed or from another format version."""


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


def read_bundle_config(path: str | Path) -> dict[str, Any]:
    """The config of the bundle file at ``path``, from its header alone (no tensor is read)."""
    try:
        with Path(path).open("rb") as file:
            (header_len,) = struct.unpack("<Q", file.read(8))
            if header_len > MAX_HEADER_BYTES:
                raise ValueError(f"header of {header_len} bytes")
            header = json.loads(file.read(header_len))
        config: dict[str, Any] = json.loads(header["__metadata__"]["tandem_config"])
    except (struct.error, KeyError, ValueError, TypeError, OSError) as exc:
        raise BundleError(f"not a policy bundle: {exc}") from None
    if config.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"bundle format {config.get('format')} != {BUNDLE_FORMAT}")
    return config


def _read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    config = read_bundle_config(path)
    try:
        tensors = st_load_file(path)
    except (ValueError, OSError, SafetensorError) as exc:
        raise BundleError(f"not a policy bundle: {exc}") from None
    return tensors, config


@dataclass(frozen=True)
class RLNets:
    """The networks of the hybrid (RL or IBRL) proposal, in eval mode, gradients off."""

    normalizer: Normalizer
    encoder: MultiCamViT | None
    actor: nn.Module
    critic: nn.Module  # the trainer's target critic: it scores the proposals when acting
    il: ILPolicy | None  # the IL proposer (ibrl, ibrl_soft); None for rl and rlpd
    mode: SelectionMode
    num_k: int


def load_rl_nets(
    cfg: LearnerSettings,
    spec: ObsSpec,
    tensors: dict[str, torch.Tensor],
    il: ILPolicy | None,
    device: torch.device,
) -> RLNets:
    """Build the RL networks of ``cfg`` and load them from the bundle's sections."""
    nets = build_networks(cfg, spec)
    normalizer = Normalizer(spec.state_dim, cfg.state_norm_clip)
    sections = {
        "normalizer": normalizer, "encoder": nets.encoder, "actor": nets.actor,
        "critic_target": nets.critic,
    }  # fmt: skip
    for name, module in sections.items():
        if module is not None:
            module.load_state_dict(_section(tensors, name))
            module.eval().requires_grad_(False).to(device)
    mode = selection_mode(cfg.method)
    return RLNets(
        normalizer, nets.encoder, nets.actor, nets.critic, None if mode == "rl" else il, mode,
        nets.num_k,
    )  # fmt: skip


class BundlePolicy:
    """Acting policy of a bundle: ``act(obs, explore) -> (action, info)`` and ``reset()``.

    ``obs`` is an env observation (a state array, or a dict with ``"state"`` and camera
    images). Frame/state stacking is kept internally; call ``reset()`` at an episode start.
    ``explore`` adds the agent's exploration noise to the RL proposal only (training
    rollouts); the IL proposal is never noised, and ``explore=False`` (evaluation) is
    deterministic. An IL-only bundle (``il_only``: warm-up, or method bc) acts with the IL
    policy alone (``rl`` is None). ``info``: ``proposal`` ("il" or "rl"), ``q_il``,
    ``q_rl`` (NaN when not computed), ``uncertainty`` (see ``act``).
    """

    def __init__(
        self, tensors: dict[str, torch.Tensor], config: dict[str, Any], device: str = "cpu"
    ):
        self.config = config
        self.method = config["method"]
        self.spec = ObsSpec.from_json(config["spec"])
        self.cfg = LearnerSettings.model_validate(config["learner"])
        self.device = torch.device(device)
        self.il: ILPolicy | None = None
        if config["il_arch"] is not None:
            self.il = _il_from(self.spec, config["il_arch"], tensors)
            self.il.proposal_samples = self.cfg.il_proposal_samples
            self.il.eval().requires_grad_(False).to(self.device)
        self.il_only = bool(config.get("il_only", False)) or self.method == "bc"
        self.rl: RLNets | None = None
        if not self.il_only:
            self.rl = load_rl_nets(self.cfg, self.spec, tensors, self.il, self.device)
        self.env_steps = int(config.get("env_steps", 0))  # sets the exploration noise
        self._stacker = Stacker(self.spec)
        self._fresh = True
        self._mc_rng = torch.Generator().manual_seed(0)  # MC-dropout masks (uncertainty)

    def reset(self) -> None:
        """Forget the stacked history (start of an episode)."""
        self._fresh = True

    @torch.no_grad()
    def act(self, obs: Any, explore: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
        """Action (A,) float32 in [-1, 1] for one observation, and the selection info.

        ``info["uncertainty"]``: how unsure the policy is of this action (``learner.uncertainty``,
        signal ``CHOSEN``: MC dropout of the RL actor); for an IL-only bundle the IL kind's
        spread, None when it exposes none.
        """
        raw = obs if isinstance(obs, dict) else {"state": np.asarray(obs, np.float32).ravel()}
        stacked = self._stacker.reset(raw) if self._fresh else self._stacker.step(raw)
        self._fresh = False
        batch = to_torch(stacked, self.device)
        if self.rl is None:
            assert self.il is not None
            action = self.il(batch)[0]
            spread = il_spread(self.il, batch)
            return action.cpu().numpy(), {
                "proposal": "il", "q_il": _NAN, "q_rl": _NAN,
                "uncertainty": None if spread is None else float(spread[0]),
            }  # fmt: skip
        p = self.propose_batch(batch, explore=explore)
        return p.action[0].cpu().numpy(), {
            "proposal": "il" if bool(p.use_il[0]) else "rl",
            "q_il": float(p.q_il[0]),
            "q_rl": float(p.q_rl[0]),
            "uncertainty": float(self.uncertainty(p)[0]),
        }

    @torch.no_grad()
    def act_batch(
        self, obs: dict[str, torch.Tensor], *, explore: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The hybrid's choice for a batch of stacked observations (tensors on the device):
        (action [B, A], use_il [B] bool, q_rl [B], q_il [B] (NaN for rl and rlpd))."""
        p = self.propose_batch(obs, explore=explore)
        return p.action, p.use_il, p.q_rl, p.q_il

    @torch.no_grad()
    def propose_batch(self, obs: dict[str, torch.Tensor], *, explore: bool) -> Proposal:
        """``act_batch`` with what it was computed from (features, the RL proposal)."""
        rl = self.rl
        if rl is None:
            raise ValueError("an IL-only bundle has no RL proposal")
        with autocast(self.cfg.bf16, self.device, acting=True):
            feat, prop = encode(rl.normalizer, rl.encoder, obs, 0)
            mu = rl.actor(feat, prop)
            std = exploration_std(self.cfg, self.env_steps)
            a_rl = sample_action(mu, std, None) if explore else mu
            action, use_il, _, q_rl, q_il = propose(
                rl.critic, rl.il, feat, prop, a_rl, obs=obs, mode=rl.mode, num_k=rl.num_k,
                beta=self.cfg.soft_beta, lcb=self.cfg.select_lcb, margin=self.cfg.select_margin,
            )  # fmt: skip
        return Proposal(action.float(), use_il, q_rl, q_il, feat, prop, a_rl, mu, obs)

    @torch.no_grad()
    def uncertainty(self, p: Proposal) -> torch.Tensor:
        """The chosen uncertainty signal of a proposal, [B]: the spread of the RL actor's
        action over MC-dropout passes (``learner.uncertainty.mc_dropout``)."""
        assert self.rl is not None
        with autocast(self.cfg.bf16, self.device, acting=True):
            return mc_dropout(self.rl.actor, p.feat, p.prop, rng=self._mc_rng)


class Proposal(NamedTuple):
    """The hybrid's choice for a batch and what it came from (tensors on the device)."""

    action: torch.Tensor  # [B, A], the action taken
    use_il: torch.Tensor  # [B] bool
    q_rl: torch.Tensor  # [B]
    q_il: torch.Tensor  # [B], NaN for rl and rlpd
    feat: torch.Tensor  # encoded observation (state features or patches)
    prop: torch.Tensor | None  # proprioception (pixels) or None
    a_rl: torch.Tensor  # [B, A], the RL proposal (with exploration noise when explore)
    mu: torch.Tensor  # [B, A], the RL actor's action without noise
    obs: dict[str, torch.Tensor]  # the stacked observation batch


def _section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    start = prefix + "."
    return {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}


def _il_from(spec: ObsSpec, arch: dict[str, Any], tensors: dict[str, torch.Tensor]) -> ILPolicy:
    """The bundle's IL policy (any kind, ``learner.il.build_il``) with its weights."""
    try:
        il = build_il(spec, arch)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"bad IL policy in the bundle: {exc}") from None
    il.load_state_dict(_section(tensors, "il"))
    return il


def load_il_policy(path: str | Path, spec: ObsSpec) -> ILPolicy:
    """The IL policy of a bundle (e.g. an SRPO policy from ``tandem train-offline``), in
    eval mode, gradients off; its observation spec must equal ``spec``."""
    tensors, config = read_bundle(path)
    if config["il_arch"] is None:
        raise BundleError(f"{path}: the bundle has no IL policy")
    bundled = ObsSpec.from_json(config["spec"])
    if bundled != spec:
        raise BundleError(f"{path}: bundle observations {bundled} != {spec}")
    return _il_from(spec, config["il_arch"], tensors).eval().requires_grad_(False)


def load_policy(data: bytes | memoryview | str | Path, device: str = "cpu") -> BundlePolicy:
    """Load a bundle (bytes, a view of them, or a file path) into an acting policy."""
    tensors, config = read_bundle(data)
    return BundlePolicy(tensors, config, device)
