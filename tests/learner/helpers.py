"""Helpers of the learner tests: tiny settings, agents and batches."""

from __future__ import annotations

from pathlib import Path

import torch

from learner.bc import BCPolicy
from learner.ibrl import IBRLAgent
from learner.obs import ObsSpec
from tandem.settings.learner import LearnerSettings

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "obs": "state", "threads": 1, "hidden_dim": 32, "state_actor_layers": 2, "critic_layers": 2,
    "num_q": 4, "num_k": 2, "batch_size": 32, "bc_hidden_dim": 32, "bc_layers": 2,
    "buffer_size": 5000, "min_buffer": 32, "device": "cpu",
}  # fmt: skip


def tiny_settings(**overrides: object) -> LearnerSettings:
    return LearnerSettings.model_validate({**TINY, **overrides})


def tiny_agent(spec: ObsSpec, **overrides: object) -> IBRLAgent:
    cfg = tiny_settings(**overrides)
    il = None
    if cfg.method in ("ibrl", "ibrl_soft"):
        il = BCPolicy(spec, hidden=16, layers=1, dropout=0.0, resnet_width=4)
    return IBRLAgent(cfg, spec, il, "cpu")


def random_batch(spec: ObsSpec, size: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def obs() -> dict[str, torch.Tensor]:
        o = {"state": torch.randn(size, spec.state_dim, generator=g)}
        for cam in spec.cameras:
            assert spec.image_shape is not None
            o[cam] = torch.randint(0, 256, (size, *spec.image_shape), generator=g).to(torch.uint8)
        return o

    return {
        "obs": obs(),
        "next_obs": obs(),
        "action": torch.rand(size, spec.action_dim, generator=g) * 2 - 1,
        "reward": torch.rand(size, generator=g),
        "discount": torch.full((size,), 0.99**3),
    }


def loaded_by_importing(modules: list[str], watched: list[str]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has loaded after importing ``modules``."""
    import json
    import subprocess
    import sys

    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded
