"""``tandem train-offline``: the stages of srpo / iql / bc on a dataset, evaluation in the
env, and a policy bundle.

Run directory: ``settings.json``, ``stages/{critic,behavior,policy}.pt`` (weights,
optimiser state and step; a finished stage is skipped and an interrupted one continues
when the command is run again with the same ``--out``), ``eval.json`` and
``policy.safetensors`` (an IL-only bundle: ``learner.acting.load_policy`` acts with it, as
the bridge does).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learner.bc import BCPolicy, bc_update
from learner.bundle import make_bundle
from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.envs import EnvSpec, make_env
from learner.obs import Normalizer, ObsSpec, to_torch
from learner.offline.config import OfflineSettings
from learner.offline.data import DatasetError, Transitions, load_dataset
from learner.offline.diffusion import ScoreNet, behavior_update
from learner.offline.iql import IQLCritic, awr_update
from learner.offline.srpo import srpo_update
from learner.train import evaluate
from tandem.settings.learner import LearnerSettings

log = logging.getLogger(__name__)
STAGES = {"srpo": ("critic", "behavior", "policy"), "iql": ("critic", "policy"), "bc": ("policy",)}


class OfflineTrainer:
    """Owns the dataset, the networks of the method's stages and the run directory."""

    def __init__(self, cfg: OfflineSettings, env: EnvSpec, data: str | Path, out: Path,
                 seed: int = 0):  # fmt: skip
        self.cfg, self.env_spec, self.out, self.seed = cfg, env, out, seed
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.env = make_env(env, cameras=(), time_limit=cfg.time_limit)
        self.data = load_dataset(data, action_dim=self.env.action_dim)
        if self.data.obs.shape[1] != self.env.state_dim:
            raise DatasetError(f"dataset states have {self.data.obs.shape[1]} dims, "
                               f"the env {self.env.state_dim}")  # fmt: skip
        s_dim, a_dim = self.env.state_dim, self.env.action_dim
        self.spec = ObsSpec(state_dim=s_dim, action_dim=a_dim, raw_state_dim=s_dim)
        self.tensors = _as_tensors(self.data, cfg.reward_scale)
        self.norm = Normalizer(s_dim, 10.0)
        self.norm.fit(self.data.obs)
        self.critic = IQLCritic(s_dim, a_dim, hidden=cfg.hidden, layers=cfg.layers,
                                expectile=cfg.expectile, gamma=cfg.gamma, tau=cfg.target_tau,
                                lr=cfg.lr)  # fmt: skip
        self.behavior = ScoreNet(s_dim, a_dim, hidden=cfg.behavior_hidden,
                                 blocks=cfg.behavior_blocks, expand=cfg.behavior_expand,
                                 dropout=cfg.behavior_dropout)  # fmt: skip
        self.behavior_opt = torch.optim.AdamW(self.behavior.parameters(), lr=cfg.lr)
        self.policy = BCPolicy(self.spec, hidden=cfg.hidden, layers=cfg.layers, dropout=0.0,
                               norm_clip=10.0)  # fmt: skip
        self.policy.normalizer.fit(self.data.obs)
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=self.policy_lr)

    def run(self) -> dict[str, Any]:
        """Train the method's stages (skipping finished ones), evaluate, write the bundle."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "settings.json").write_text(self.cfg.model_dump_json(indent=1) + "\n")
        log.info("dataset: %s", self.data.summary())
        for stage in STAGES[self.cfg.method]:
            self._run_stage(stage)
        self.policy.eval()
        self.write_bundle()
        result = self.evaluate()
        (self.out / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
        return result

    # ---------------------------------------------------------------- stages
    def _modules(self, stage: str) -> dict[str, Any]:
        return {
            "critic": {
                "critic": self.critic,
                "q_opt": self.critic.q_opt,
                "v_opt": self.critic.v_opt,
            },
            "behavior": {"behavior": self.behavior, "opt": self.behavior_opt},
            "policy": {"policy": self.policy, "opt": self.policy_opt},
        }[stage]

    def _steps(self, stage: str) -> int:
        return {"critic": self.cfg.critic_steps, "behavior": self.cfg.behavior_steps,
                "policy": self.cfg.policy_steps}[stage]  # fmt: skip

    def _run_stage(self, stage: str) -> None:
        path = self.out / "stages" / f"{stage}.pt"
        start = self.load_stage(path, stage) if path.exists() else 0
        total = self._steps(stage)
        if start >= total:
            log.info("stage %s: done (%d steps), loaded", stage, start)
            return
        step_fn = self._step_fn(stage)
        t0, metrics = time.monotonic(), {}
        for step in range(start, total):
            self._set_lr(stage, step, total)
            metrics = step_fn(self._batch())
            if (step + 1) % self.cfg.checkpoint_every == 0 or step + 1 == total:
                self._save_stage(path, stage, step + 1)
        log.info("stage %s: %d steps in %.1f s, last %s", stage, total - start,
                 time.monotonic() - t0, metrics)  # fmt: skip

    def _step_fn(self, stage: str) -> Callable[[dict[str, Any]], dict[str, float]]:
        cfg = self.cfg
        if stage == "critic":
            return self.critic.update
        if stage == "behavior":
            return lambda b: behavior_update(self.behavior, self.behavior_opt, b["action"],
                                             b["obs"])  # fmt: skip
        if cfg.method == "bc":
            return lambda b: bc_update(self.policy, self.policy_opt, b["raw_obs"], b["action"],
                                       grad_clip=1e9)  # fmt: skip
        if cfg.method == "iql":
            return lambda b: awr_update(self.policy, self.policy_opt, self.critic, b,
                                        temperature=cfg.awr_temperature)  # fmt: skip
        return lambda b: srpo_update(
            self.policy,
            self.policy_opt,
            self.behavior,
            self.critic.q_target,
            b,
            beta=cfg.beta,
            weighting=cfg.weighting,
            normalize_q=cfg.normalize_q,
        )

    @property
    def policy_lr(self) -> float:
        return self.cfg.lr if self.cfg.policy_lr is None else self.cfg.policy_lr

    def _set_lr(self, stage: str, step: int, total: int) -> None:
        """Cosine decay to 0 of the policy's learning rate (as SRPO's extraction)."""
        if stage == "policy" and self.cfg.method == "srpo":
            lr = 0.5 * self.policy_lr * (1 + math.cos(math.pi * step / total))
            for group in self.policy_opt.param_groups:
                group["lr"] = lr

    def _batch(self) -> dict[str, Any]:
        idx = torch.as_tensor(self.rng.integers(0, len(self.data), self.cfg.batch_size))
        raw = {k: v[idx] for k, v in self.tensors.items()}
        with torch.no_grad():
            batch = {**raw, "obs": self.norm(raw["obs"]), "next_obs": self.norm(raw["next_obs"])}
        batch["raw_obs"] = {"state": raw["obs"]}
        return batch

    def _save_stage(self, path: Path, stage: str, step: int) -> None:
        state = {name: m.state_dict() for name, m in self._modules(stage).items()}
        save_checkpoint(path, {"stage": stage, "step": step, "state": state,
                               "settings_json": self.cfg.model_dump_json()})  # fmt: skip

    def load_stage(self, path: Path, stage: str) -> int:
        """Load a stage checkpoint into this trainer's networks; returns its step."""
        saved = load_checkpoint(path)
        for name, module in self._modules(stage).items():
            module.load_state_dict(saved["state"][name])
        log.info("stage %s: resumed at step %d", stage, saved["step"])
        return int(saved["step"])

    # ---------------------------------------------------------------- outputs
    def act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, bool]:
        with torch.no_grad():
            return self.policy(to_torch(obs, "cpu"))[0].numpy(), True

    def evaluate(self) -> dict[str, Any]:
        episodes = self.cfg.eval_episodes
        result: dict[str, Any] = {"method": self.cfg.method, "env": str(self.env_spec),
                                  "seed": self.seed, "episodes": episodes}  # fmt: skip
        if episodes:
            stats = evaluate(self.env, self.act, self.spec, episodes, 10_000 + self.seed)
            result.update(success_rate=stats["success_rate"], mean_return=stats["mean_return"])
            log.info("evaluation: success %.2f over %d episodes", stats["success_rate"], episodes)
        return result

    def write_bundle(self) -> Path:
        """An IL-only bundle of the policy (the bridge loads it like any other)."""
        learner = LearnerSettings(method="bc", obs="state", bc_hidden_dim=self.cfg.hidden,
                                  bc_layers=self.cfg.layers, bc_dropout=0.0)  # fmt: skip
        blob, _ = make_bundle(learner, self.spec, agent=None, il=self.policy, il_only=True)
        path = self.out / "policy.safetensors"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        return path


def _as_tensors(data: Transitions, reward_scale: float) -> dict[str, torch.Tensor]:
    return {
        "obs": torch.as_tensor(data.obs), "action": torch.as_tensor(data.action),
        "reward": torch.as_tensor(data.reward * reward_scale),
        "next_obs": torch.as_tensor(data.next_obs),
        "terminated": torch.as_tensor(data.terminated.astype(np.float32)),
    }  # fmt: skip
