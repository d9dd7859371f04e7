"""Imitation (IL) policy kinds: one module each, one base (``learner.il.base``).

| kind        | module         | trained by               | deterministic action                  |
|-------------|----------------|--------------------------|---------------------------------------|
| ``mse``     | ``mse.py``     | MSE regression           | the regression                        |
| ``gaussian``| ``gaussian.py``| Gaussian NLL             | the mean                              |
| ``gmm``     | ``gmm.py``     | mixture log-likelihood   | mean of the most probable component   |
| ``diffusion``| ``diffusion.py``| DDPM, x0 or eps        | DDIM from fixed noise (densest)       |
| ``bins``    | ``bins.py``    | per-dim cross-entropy, AR| greedy bin per dimension              |

``make_il(cfg, spec)`` builds the kind that ``learner.il_kind`` names (``bc`` is ``mse``);
``build_il(spec, arch)`` rebuilds a policy from its ``arch`` (a bundle's or a checkpoint's
``il_arch``; one without ``kind`` is an ``mse`` policy, as every policy was before kinds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from learner.il.base import ILPolicy, il_update
from learner.il.bins import BinsPolicy
from learner.il.diffusion import DiffusionPolicy
from learner.il.gaussian import GaussianPolicy
from learner.il.gmm import GMMPolicy
from learner.il.mse import BCPolicy

if TYPE_CHECKING:
    from learner.obs import ObsSpec
    from tandem.settings.learner import LearnerSettings

__all__ = ["KINDS", "ILPolicy", "build_il", "il_update", "kind_of", "make_il"]

KINDS: dict[str, type[ILPolicy]] = {
    "mse": BCPolicy,
    "gaussian": GaussianPolicy,
    "gmm": GMMPolicy,
    "diffusion": DiffusionPolicy,
    "bins": BinsPolicy,
}
ALIASES = {"bc": "mse"}


def kind_of(il_kind: str) -> str:
    """The policy kind a ``learner.il_kind`` value trains (``bc`` -> ``mse``)."""
    kind = ALIASES.get(il_kind, il_kind)
    if kind not in KINDS:
        raise ValueError(f"il_kind {il_kind!r} is not a trainable kind; one of {sorted(KINDS)}")
    return kind


def kind_args(cfg: LearnerSettings, kind: str) -> dict[str, Any]:
    """The kind-specific constructor arguments from the settings."""
    if kind == "gmm":
        return {"modes": cfg.il_gmm_modes}
    if kind == "diffusion":
        return {"train_steps": cfg.il_diffusion_train_steps,
                "ddim_steps": cfg.il_diffusion_ddim_steps,
                "candidates": cfg.il_diffusion_candidates,
                "predict": cfg.il_diffusion_predict,
                "obs_noise": cfg.il_diffusion_obs_noise}  # fmt: skip
    if kind == "bins":
        return {"bins": cfg.il_bins}
    return {}


def make_il(cfg: LearnerSettings, spec: ObsSpec, *, dropout: float | None = None) -> ILPolicy:
    """A fresh IL policy of the settings' kind (normaliser not fitted), on the CPU.

    ``dropout`` overrides ``bc_dropout`` (the online learner's ``online_bc_dropout``).
    """
    kind = kind_of(cfg.il_kind)
    policy = KINDS[kind](
        spec, hidden=cfg.bc_hidden_dim, layers=cfg.bc_layers,
        dropout=cfg.bc_dropout if dropout is None else dropout,
        pixel_dropout=cfg.bc_pixel_dropout, resnet_width=cfg.bc_resnet_width,
        shift_pad=cfg.shift_pad, norm_clip=cfg.state_norm_clip, **kind_args(cfg, kind),
    )  # fmt: skip
    policy.proposal_samples = cfg.il_proposal_samples
    return policy


def build_il(spec: ObsSpec, arch: dict[str, Any]) -> ILPolicy:
    """Rebuild a policy from its ``arch`` (ValueError for an unknown kind)."""
    args = dict(arch)
    kind = args.pop("kind", "mse")
    if kind not in KINDS:
        raise ValueError(f"unknown IL policy kind {kind!r}; one of {sorted(KINDS)}")
    return KINDS[kind](spec, **args)
