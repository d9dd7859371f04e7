"""The file ``tandem pretrain`` writes (``DIR/encoder.pt``) and what reads it.

One ``learner.checkpoint`` file (tensors, numbers, strings, lists and dicts only): the
Proto-RL model (encoder f, projector g, predictor v, prototypes, EMA targets), the latent
queue, the observation spec and the sizes it was built with. The IBRL pixel agent loads the
encoder from it (``learner.encoder_init``) and, for the curiosity bonus, the whole model.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from learner.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from learner.obs import ObsSpec
from learner.proto.model import ProtoLearner
from tandem.settings.learner import LearnerSettings

KIND = "tandem-proto-encoder"
SIZE_FIELDS = (
    "vit_dim", "vit_heads", "vit_depth", "proto_prototypes", "proto_latent_dim",
    "proto_pred_hidden", "proto_queue_batches",
)  # fmt: skip


class EncoderInitError(ValueError):
    """An encoder_init file is missing, of another kind, or does not fit the agent."""


def save_pretrained(path: str | Path, proto: ProtoLearner) -> Path:
    """Write the Proto-RL model, queue, spec and sizes of ``proto`` to ``path``."""
    sizes = {name: getattr(proto.cfg, name) for name in SIZE_FIELDS}
    state = {"kind": KIND, "spec": proto.spec.to_json(), "sizes": sizes, **proto.state_dict()}
    return save_checkpoint(path, state)


def read_pretrained(path: str | Path) -> dict[str, Any]:
    """The saved state; EncoderInitError when unreadable or not a tandem pretrain file."""
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise EncoderInitError(f"encoder_init: {exc}") from None
    except pickle.UnpicklingError as exc:  # not a torch file at all
        raise EncoderInitError(f"encoder_init: unreadable file {path}: {exc}") from None
    if state.get("kind") != KIND:
        raise EncoderInitError(f"encoder_init: {path} is not a tandem pretrain encoder file")
    return state


def check_fits(state: dict[str, Any], cfg: LearnerSettings, spec: ObsSpec, path: Any) -> None:
    """EncoderInitError naming the first difference between the file and the agent."""
    saved = ObsSpec.from_json(state["spec"])
    for name in ("cameras", "image_shape"):
        mine, theirs = getattr(spec, name), getattr(saved, name)
        if tuple(mine or ()) != tuple(theirs or ()):
            raise EncoderInitError(
                f"encoder_init {path}: pre-trained with {name} = {theirs}, this agent has {mine}"
            )
    for name in ("vit_dim", "vit_heads", "vit_depth"):
        if state["sizes"][name] != getattr(cfg, name):
            raise EncoderInitError(
                f"encoder_init {path}: pre-trained with {name} = {state['sizes'][name]}, "
                f"this agent has {getattr(cfg, name)}"
            )


def load_encoder(encoder: nn.Module, path: str | Path, cfg: LearnerSettings, spec: ObsSpec) -> None:
    """Copy the pre-trained (online) encoder f of ``path`` into ``encoder``."""
    state = read_pretrained(path)
    check_fits(state, cfg, spec, path)
    prefix = "encoder."
    weights = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
    try:
        encoder.load_state_dict(weights)
    except RuntimeError as exc:
        raise EncoderInitError(f"encoder_init {path}: {exc}") from None


def load_proto(
    path: str | Path, cfg: LearnerSettings, spec: ObsSpec, device: torch.device | str
) -> ProtoLearner:
    """The whole pre-trained Proto-RL learner (model and queue) of ``path``, with the sizes
    it was trained with and the other proto settings of ``cfg`` (k, temperature)."""
    state = read_pretrained(path)
    check_fits(state, cfg, spec, path)
    sized = cfg.model_copy(update=state["sizes"])
    proto = ProtoLearner(sized, spec, device)
    proto.model.load_state_dict(state["model"])
    proto.queue.load_state_dict(state["queue"])
    proto.num_updates = int(state["num_updates"])
    return proto
