"""``tandem pretrain``: reward-free Proto-RL exploration with the TD3 backbone (no IL policy).

The RL agent (``learner.ibrl.IBRLAgent``, method ``rl``) acts on the Proto-RL encoder's
features, which only the representation loss trains (Proto-RL's decoupling), and learns
from the intrinsic reward alone: the kNN novelty of the next observation, computed on each
sampled batch with the current representation (1-step returns). Before updates start,
``warmup_episodes`` episodes of uniform random actions fill the replay.

Writes into ``out``: ``settings.json`` (resolved, with the overrides below), ``encoder.pt``
(``learner.encoder_init``; ``learner.proto.artifact``), ``explorer.safetensors`` (the exploring
agent as a policy bundle: the bridge's ``policy = "play"``), ``metrics.jsonl``,
``coverage.json`` (sim tasks) and ``episodes/`` (every exploration episode in the episode store,
usable as prior data, e.g. by ``tandem train-offline``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learner import runtime
from learner.bundle import make_bundle
from learner.demos import step_data, write_episode
from learner.envs import CanonicalEnv, EnvSpec, make_env
from learner.ibrl import IBRLAgent, resolve_device, to_floats
from learner.obs import to_torch
from learner.proto.artifact import save_pretrained
from learner.proto.coverage import coverage
from learner.proto.model import ProtoLearner
from learner.train import batch_to_torch, build_spec, make_ring
from tandem.episodes import StepData
from tandem.messages import EpisodeKind
from tandem.settings import Settings, save_settings
from tandem.settings.learner import LearnerSettings

log = logging.getLogger(__name__)
EXPLORER_FILE = "explorer.safetensors"
OVERRIDES: dict[str, Any] = {
    "method": "rl", "obs": "pixels", "n_step": 1, "frame_stack": 1, "state_stack": 1,
    "intrinsic_bonus": 0.0, "encoder_init": None,
}  # fmt: skip


@dataclass
class PretrainArgs:
    env: EnvSpec
    steps: int
    out: Path | None  # None: keep nothing on disk (the benchmark)
    seed: int = 0
    random_actions: bool = False  # the baseline: uniform random actions, nothing learnt


def pretrain_settings(settings: Settings) -> Settings:
    """``settings`` with what pre-training needs: method rl on pixels, 1-step returns (the
    reward is computed per sampled transition), no frame or state stacking, no bonus."""
    learner = settings.learner.model_copy(update=OVERRIDES)
    return settings.model_copy(update={"learner": learner})


class Explorer:
    """Owns the env, the Proto-RL learner, the agent and the replay of one pre-training run."""

    def __init__(self, settings: Settings, args: PretrainArgs):
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        self.settings, self.args = pretrain_settings(settings), args
        self.cfg: LearnerSettings = self.settings.learner
        self.device = resolve_device(self.cfg.device)
        runtime.configure(self.device, self.cfg.threads, tf32=self.cfg.tf32)
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        cams = self.cfg.cameras or None
        self.env: CanonicalEnv = make_env(args.env, cameras=cams, image_size=self.cfg.image_size,
                                          time_limit=self.cfg.time_limit)  # fmt: skip
        self.spec = build_spec(self.env, self.cfg, pixels=True)
        self.proto = ProtoLearner(self.cfg, self.spec, self.device, seed=args.seed)
        self.agent = IBRLAgent(self.cfg, self.spec, None, self.device)
        self.agent.share_encoder(self.proto.model.encoder)
        capacity = min(self.cfg.buffer_size, 2 * args.steps + 2)
        self.ring = make_ring(self.spec, capacity, self.cfg, evict=True)
        self.env_step = self.episodes = 0
        self.episode_states: list[np.ndarray] = []
        self.sums: dict[str, float] = {}
        self.updates = 0
        self.t0 = time.monotonic()

    # ---------------------------------------------------------------- entry point
    def run(self) -> dict[str, float]:
        """Explore for ``steps`` env steps; write the outputs; return the coverage."""
        if self.args.out is not None:
            self.args.out.mkdir(parents=True, exist_ok=True)
            save_settings(self.settings, self.args.out / "settings.json")
        while self.env_step < self.args.steps:
            self._episode()
        result = coverage(self.episode_states) if self.args.env.kind == "sim" else {}
        result["wall_s"] = round(time.monotonic() - self.t0, 2)
        result["updates"] = float(self.proto.num_updates)
        if self.args.out is not None:
            save_pretrained(self.args.out / "encoder.pt", self.proto)
            self._save_explorer(self.args.out / EXPLORER_FILE)
            (self.args.out / "coverage.json").write_text(json.dumps(result, indent=1) + "\n")
        log.info("pre-training done: %s", result)
        return result

    def _save_explorer(self, path: Path) -> None:
        """The exploring agent as a policy bundle (method rl, the Proto-RL encoder inside):
        what the bridge's ``policy = "play"`` acts with."""
        blob, _ = make_bundle(self.cfg, self.spec, agent=self.agent, il=None)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)

    # ---------------------------------------------------------------- acting
    def _warming_up(self) -> bool:
        return self.args.random_actions or self.episodes < self.cfg.warmup_episodes

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self._warming_up():
            return self.rng.uniform(-1, 1, self.spec.action_dim).astype(np.float32)
        action, _ = self.agent.act(to_torch(self._view(obs), self.device), explore=True)
        return np.asarray(action[0].cpu().numpy(), np.float32)

    def _episode(self) -> None:
        obs, _ = self.env.reset(seed=self.args.seed * 1_000_003 + self.episodes)
        frames, steps = [obs], list[StepData]()
        terminated = truncated = False
        while not (terminated or truncated) and self.env_step < self.args.steps:
            action = self._act(frames[-1])
            nxt, reward, terminated, truncated, info = self.env.step(action)
            steps.append(step_data(frames[-1], action, reward, info=info, terminated=terminated,
                                    truncated=truncated, t=len(steps)))  # fmt: skip
            frames.append(nxt)
            self.env_step += 1
            self.agent.env_steps = self.env_step
            self._after_step()
        self._store(frames, steps, terminated, truncated)

    def _store(self, frames: list[dict[str, np.ndarray]], steps: list[StepData],
               terminated: bool, truncated: bool) -> None:  # fmt: skip
        obs = {k: np.stack([f[k] for f in frames]) for k in frames[0]}
        self.episode_states.append(obs["state"])  # every entry: coverage reads the object
        actions = np.stack([s.action[: self.spec.action_dim] for s in steps])
        rewards = np.zeros(len(steps), np.float32)  # reward-free: r_int is computed per batch
        self.ring.add_episode(self._view(obs), actions, rewards, terminated)
        self.episodes += 1
        if self.episodes == max(self.cfg.warmup_episodes, 1):  # state statistics, once
            self.agent.normalizer.fit(self.ring.obs["state"][: self.ring.num_frames])
        if self.args.out is not None:
            self._write_episode(steps, frames[-1], terminated, truncated)

    def _write_episode(self, steps: list[StepData], final: dict[str, np.ndarray],
                       terminated: bool, truncated: bool) -> None:  # fmt: skip
        assert self.args.out is not None
        write_episode(
            self.args.out / "episodes", self.args.env, steps, final_obs=final,
            kind=EpisodeKind.ROLLOUT, name="proto",
            extra={"action_dim": self.spec.action_dim, "behaviour": "proto-rl exploration",
                   "recorder": "tandem pretrain"},
            success=any(s.success for s in steps), terminated=terminated, truncated=truncated,
        )  # fmt: skip

    def _view(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the agent sees: the first ``state_dims`` state entries and the cameras."""
        return {**obs, "state": obs["state"][..., : self.spec.raw_state_dim]}

    # ---------------------------------------------------------------- learning
    def _after_step(self) -> None:
        cfg = self.cfg
        ready = not self._warming_up() and len(self.ring) >= cfg.min_buffer
        if ready and self.env_step % cfg.update_freq == 0:
            for _ in range(cfg.num_critic_updates):
                self._update()
        if self.env_step % cfg.log_every == 0:
            self._log()

    def _update(self) -> None:
        """One representation step, then one RL step on r_int of the same batch."""
        batch = batch_to_torch(self.ring.sample(self.cfg.batch_size, self.rng), self.device)
        metrics = self.proto.update(batch["obs"], batch["next_obs"])
        r_int = self.proto.intrinsic_reward(batch["next_obs"])
        batch["reward"] = r_int
        metrics.update(self.agent.update([batch]))
        metrics.update(to_floats({"proto/intrinsic_reward": r_int.mean()}))
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.updates += 1

    def _log(self) -> None:
        line: dict[str, Any] = {k: v / max(self.updates, 1) for k, v in self.sums.items()}
        if self.args.env.kind == "sim" and self.episode_states:
            line["explore/ee_voxels"] = coverage(self.episode_states)["ee_voxels"]
        self.sums, self.updates = {}, 0
        record = {"env_step": self.env_step, "update_step": self.proto.num_updates,
                  "t_wall": time.time(), "metrics": line}  # fmt: skip
        log.info("step %d: %s", self.env_step, {k: round(v, 4) for k, v in line.items()})
        if self.args.out is not None:
            with open(self.args.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
