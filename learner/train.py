"""``tandem train``: in-process training on an environment (no bridge).

Writes into the run directory: ``settings.json`` (resolved), ``eval.csv`` (env_step,
success_rate, mean_return, bc_selected_frac, update_step, wall_s, greedy_success_rate: the
greedy-selection score of an ibrl_soft agent, as the reference logs it), ``metrics.jsonl``,
``checkpoints/latest.pt`` (+ ``replay.npz``) and ``policy.safetensors`` (the acting bundle).
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from learner import runtime
from learner.acting import load_il_policy
from learner.bundle import make_bundle
from learner.checkpoint import load_checkpoint, load_replay, save_checkpoint, save_replay
from learner.demos import load_demos
from learner.envs import CanonicalEnv, EnvSpec, make_env
from learner.episode_arrays import Segment
from learner.ibrl import (
    ActingNets,
    IBRLAgent,
    copy_acting_nets,
    resolve_device,
    sync_acting_nets,
    to_floats,
)
from learner.il import ILPolicy, il_update, make_il
from learner.loggers import NullSink, ScalarSink, make_sink
from learner.obs import ObsSpec, Stacker, stack_episode, to_torch
from learner.overlap import UpdateWorker
from learner.plot import RUN_FILE
from learner.replay import Replay, TransitionRing, il_cache_fn, sampling
from learner.selection import SelectionMode
from tandem.settings import Settings, save_settings
from tandem.settings.learner import LearnerSettings

log = logging.getLogger(__name__)
GIL_SWITCH_S = 2e-4  # GIL switch interval while a learner thread runs (default 5e-3)
EVAL_FIELDS = [
    "env_step",
    "success_rate",
    "mean_return",
    "bc_selected_frac",
    "update_step",
    "wall_s",
    "greedy_success_rate",
]


@dataclass
class TrainArgs:
    env: EnvSpec
    demos: Path
    steps: int
    out: Path
    seed: int = 0
    resume: bool = False


def use_pixels(cfg: LearnerSettings, env_cameras: list[str], device: torch.device) -> bool:
    """Resolve ``obs``: auto means pixels when the env has cameras and the device is CUDA."""
    if cfg.obs == "auto":
        return bool(env_cameras) and device.type == "cuda"
    return cfg.obs == "pixels"


def build_spec(env: CanonicalEnv, cfg: LearnerSettings, pixels: bool) -> ObsSpec:
    """Observation spec of the networks from the env and the settings."""
    raw_dim = env.state_dim if cfg.state_dims is None else min(cfg.state_dims, env.state_dim)
    cameras = tuple(env.cameras) if pixels else ()
    if pixels and not cameras:
        raise ValueError("obs = pixels but the environment has no camera images")
    image_shape = None
    if cameras:
        h, w, c = env.image_shapes[cameras[0]]
        image_shape = (h, w, c * cfg.frame_stack)
    return ObsSpec(
        state_dim=raw_dim * cfg.state_stack, action_dim=env.action_dim,
        cameras=cameras, image_shape=image_shape, raw_state_dim=raw_dim,
        frame_stack=cfg.frame_stack, state_stack=cfg.state_stack,
    )  # fmt: skip


def make_ring(spec: ObsSpec, capacity: int, cfg: LearnerSettings, *, evict: bool) -> TransitionRing:
    shapes: dict[str, tuple[tuple[int, ...], str]] = {"state": ((spec.state_dim,), "float32")}
    for cam in spec.cameras:
        assert spec.image_shape is not None
        shapes[cam] = (spec.image_shape, "uint8")
    return TransitionRing(capacity, shapes, spec.action_dim, cfg.n_step, cfg.gamma, evict=evict)


def demo_ring(spec: ObsSpec, demos: list[Segment], cfg: LearnerSettings) -> TransitionRing:
    """All demos, stacked, in a ring that never evicts."""
    ring = make_ring(spec, sum(len(d) + 1 for d in demos), cfg, evict=False)
    for demo in demos:
        obs = stack_episode(spec, demo.states[:, : spec.raw_state_dim], demo.images)
        ring.add_episode(obs, demo.actions, demo.rewards, demo.terminated)
    return ring


def batch_to_torch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in batch.items():
        out[key] = to_torch(value, device, batch=True) if isinstance(value, dict) else (
            torch.as_tensor(value, device=device)
        )  # fmt: skip
    return out


def pretrain_il(
    il: ILPolicy, store: TransitionRing, cfg: LearnerSettings, device: torch.device,
    rng: np.random.Generator,
) -> dict[str, float]:  # fmt: skip
    """Behaviour cloning (the kind's own loss) on the demo transitions with a progress bar
    (stderr)."""
    optimizer = torch.optim.Adam(il.parameters(), lr=cfg.bc_lr)
    metrics: dict[str, float] = {}
    bar = tqdm(
        range(cfg.bc_steps), desc="IL pre-training", unit="step", leave=False, mininterval=1.0
    )
    for step in bar:
        batch = batch_to_torch(store.sample(cfg.batch_size, rng), device)
        metrics = il_update(il, optimizer, batch["obs"], batch["action"], cfg.bc_grad_clip)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{metrics['bc/loss']:.4f}")
    il.eval()
    return metrics


def evaluate(
    env: CanonicalEnv, policy: Any, spec: ObsSpec, episodes: int, seed: int
) -> dict[str, float]:
    """Run ``episodes`` episodes of ``policy(obs_batch) -> (action, use_il or None)``."""
    successes, returns, il_steps, steps = 0, [], 0, 0
    for ep in range(episodes):
        stacker = Stacker(spec)
        raw, _ = env.reset(seed=seed + ep)
        obs, done, total, success = stacker.reset(raw), False, 0.0, False
        while not done:
            action, use_il = policy(obs)
            raw, reward, terminated, truncated, info = env.step(action)
            obs = stacker.step(raw)
            total += reward
            success = success or bool(info["success"])
            il_steps, steps = il_steps + int(use_il), steps + 1
            done = terminated or truncated
        successes += int(success)
        returns.append(total)
    return {
        "success_rate": successes / episodes,
        "mean_return": float(np.mean(returns)),
        "bc_selected_frac": il_steps / max(steps, 1),
    }


class EvalLog:
    """Appends rows to ``eval.csv`` (header written once)."""

    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            with open(path, "w", newline="") as f:
                csv.writer(f).writerow(EVAL_FIELDS)

    def append(self, row: dict[str, float]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in EVAL_FIELDS])


class Trainer:
    """Owns the env, demos, IL policy, agent, replay and the run directory."""

    def __init__(self, settings: Settings, args: TrainArgs):
        self.settings, self.args, self.cfg = settings, args, settings.learner
        self.device = resolve_device(self.cfg.device)
        runtime.configure(
            self.device, self.cfg.threads, tf32=self.cfg.tf32, overlap=self.cfg.overlap
        )
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        self.out = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        pixels = False
        if use_pixels(self.cfg, ["?"], self.device):  # only then look for cameras (rendering)
            probe = make_env(args.env, image_size=self.cfg.image_size)
            pixels = use_pixels(self.cfg, probe.cameras, self.device)
            probe.close()
        cams = (self.cfg.cameras or None) if pixels else ()
        size, limit = self.cfg.image_size, self.cfg.time_limit
        self.env = make_env(args.env, cameras=cams, image_size=size, time_limit=limit)
        self.eval_env = make_env(args.env, cameras=cams, image_size=size, time_limit=limit)
        self.spec = build_spec(self.env, self.cfg, pixels)
        demos = load_demos(args.demos, action_dim=self.spec.action_dim, cameras=self.spec.cameras)
        self.demos = demo_ring(self.spec, demos, self.cfg)
        self.demo_states = self.demos.obs["state"][: self.demos.num_frames]
        self.il = self._make_il() if self.cfg.method not in {"rl", "rlpd"} else None
        self.agent: IBRLAgent | None = None
        self.env_step = 0
        self.sink: ScalarSink = NullSink()  # run() opens the chosen one
        self.episodes = 0
        self.t0 = time.monotonic()
        self.eval_log = EvalLog(self.out / "eval.csv")
        log.info("run %s: method=%s obs=%s device=%s spec=%s", self.out, self.cfg.method,
                 "pixels" if pixels else "state", self.device, self.spec)  # fmt: skip

    def _make_il(self) -> ILPolicy:
        cfg = self.cfg
        if cfg.il_kind == "srpo":  # an offline policy (tandem train-offline), used as is
            assert cfg.il_bundle is not None
            return load_il_policy(cfg.il_bundle, self.spec).to(self.device)
        il = make_il(cfg, self.spec)  # the kind of learner.il_kind (learner.il)
        il.normalizer.fit(self.demo_states)
        return il.to(self.device)

    # ---------------------------------------------------------------- entry point
    def run(self) -> list[dict[str, float]]:
        """Train for ``args.steps`` env steps in total; returns the eval rows of this call."""
        save_settings(self.settings, self.out / "settings.json")
        self._save_run_info()
        self.sink = make_sink(self.cfg.logger, self.out, self.settings.model_dump(mode="json"))
        try:
            state = self._load_resume() if self.args.resume else None
            if self.il is not None and state is None and self.cfg.il_kind != "srpo":
                metrics = pretrain_il(self.il, self.demos, self.cfg, self.device, self.rng)
                log.info("IL pre-training done: %s", metrics)
            if self.cfg.method == "bc":
                return self._run_bc()
            return self._run_loop(state)
        finally:
            self.sink.close()

    def _run_loop(self, state: dict[str, Any] | None) -> list[dict[str, float]]:
        """The training loop after the IL pre-training; ``learner.dagger.DAggerTrainer``
        overrides it for dagger and hg_dagger (they need a scripted expert)."""
        if self.cfg.method in ("dagger", "hg_dagger"):
            raise ValueError(f"method {self.cfg.method} runs with learner.dagger.DAggerTrainer")
        return RLLoop(self, state).run()

    def _save_run_info(self) -> None:
        """What ``tandem plot`` groups runs by: env, method, seed (and the budget)."""
        info = {"env": str(self.args.env), "method": self.cfg.method, "seed": self.args.seed,
                "steps": self.args.steps}  # fmt: skip
        (self.out / RUN_FILE).write_text(json.dumps(info, indent=1) + "\n")

    def _load_resume(self) -> dict[str, Any] | None:
        path = self.out / "checkpoints" / "latest.pt"
        if not path.exists():
            log.warning("--resume: no checkpoint in %s; starting fresh", self.out)
            return None
        state = load_checkpoint(path)
        if self.il is not None and "il" in state["agent"]:
            self.il.load_state_dict(state["agent"]["il"])
        self.env_step = int(state["progress"]["env_step"])
        self.episodes = int(state["progress"]["episodes"])
        log.info("resuming %s at env step %d", self.out, self.env_step)
        return state

    def _run_bc(self) -> list[dict[str, float]]:
        assert self.il is not None
        il = self.il

        def act(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, bool]:
            with torch.no_grad():
                return il(to_torch(obs, self.device))[0].cpu().numpy(), True

        row = self.evaluate_row(act, update_step=0)
        self.write_bundle()
        save_checkpoint(self.out / "checkpoints" / "latest.pt", {
            "agent": {"il": il.state_dict()}, "settings_json": self.settings.model_dump_json(),
            "spec": self.spec.to_json(), "progress": {"env_step": 0, "episodes": 0},
        })  # fmt: skip
        return [row]

    def evaluate_row(self, act: Any, update_step: int, greedy_act: Any = None) -> dict[str, float]:
        """Evaluate ``act`` (and ``greedy_act``, when given, on the same seeds) into a row."""
        episodes, seed = self.cfg.eval_episodes, 10_000 + self.args.seed
        result = evaluate(self.eval_env, act, self.spec, episodes, seed)
        if greedy_act is not None:
            greedy = evaluate(self.eval_env, greedy_act, self.spec, episodes, seed)
            result["greedy_success_rate"] = greedy["success_rate"]
        row = {"env_step": self.env_step, "update_step": update_step,
               "wall_s": round(time.monotonic() - self.t0, 2), **result}  # fmt: skip
        self.eval_log.append(row)
        self.sink.log({f"eval/{k}": v for k, v in result.items()}, self.env_step)
        log.info("eval at step %d: success %.2f return %.2f (IL chosen %.2f)", self.env_step,
                 row["success_rate"], row["mean_return"], row["bc_selected_frac"])  # fmt: skip
        return row

    def write_bundle(self) -> bytes:
        blob, _ = make_bundle(self.cfg, self.spec, agent=self.agent, il=self.il)
        tmp = self.out / "policy.safetensors.tmp"
        tmp.write_bytes(blob)
        tmp.replace(self.out / "policy.safetensors")
        return blob


class RLLoop:
    """The act -> step -> store -> update loop of ibrl, ibrl_soft, rl and rlpd.

    With ``overlap`` the update calls run on a learner thread (``learner.overlap``) while the
    env steps; acting then reads copies of the acting networks, refreshed after every update
    call. Metrics stay tensors until a log line reads them.
    """

    def __init__(self, trainer: Trainer, state: dict[str, Any] | None):
        self.t, cfg = trainer, trainer.cfg
        il = trainer.il if cfg.method in ("ibrl", "ibrl_soft") else None
        self.agent = IBRLAgent(cfg, trainer.spec, il, trainer.device)
        self.agent.normalizer.fit(trainer.demo_states)
        self.online = make_ring(trainer.spec, cfg.buffer_size, cfg, evict=True)
        mode, frac = sampling(cfg.method, cfg.rlpd_demo_frac, cfg.ibrl_demo_frac)
        self.replay = Replay(trainer.demos, self.online, mode, frac)
        if state is not None:
            self.agent.load_state_dict(state["agent"])
            replay_path = trainer.out / "checkpoints" / "replay.npz"
            if replay_path.exists():
                load_replay(replay_path, self.online)
        if il is not None and cfg.caches_il_proposal:
            self.replay.set_il_proposal(il_cache_fn(il, trainer.device))
        self.on_device = cfg.replay_on_device and trainer.device.type == "cuda"
        if self.on_device:
            self.replay.mirror(trainer.device)
        trainer.agent = self.agent
        self.metrics_file = trainer.out / "metrics.jsonl"
        self.data_lock = threading.Lock()  # replay: episodes added here, sampled by the learner
        self.window_lock = threading.Lock()
        self.worker: UpdateWorker | None = None
        self.acting: ActingNets | None = None
        self.acting_lock = threading.Lock()
        self.learner_rng = np.random.default_rng([trainer.args.seed, 1])
        self.sums: dict[str, torch.Tensor] = {}  # metric sums of the log window
        self.updates = 0  # update calls in the log window
        self._reset_window()

    def _reset_window(self) -> None:
        """Start a log window (sums and updates, which the learner thread adds to, are
        taken and reset by ``_log``)."""
        self.acts, self.il_acts = 0, 0
        self.ep_returns: list[float] = []
        self.ep_success: list[bool] = []
        self.window_t0 = time.monotonic()

    def run(self) -> list[dict[str, float]]:
        rows = []
        if self.t.env_step == 0:
            rows.append(self._evaluate())
        switch = sys.getswitchinterval()
        if self.t.cfg.overlap:
            self.acting = copy_acting_nets(self.agent.acting_nets())
            self.worker = UpdateWorker(self._update, self.t.cfg.overlap_max_lag)
            # The learner thread needs the GIL back after every torch op; while the env
            # thread runs Python (IK, stacking) it would wait up to the 5 ms default each time.
            sys.setswitchinterval(GIL_SWITCH_S)
        try:
            while self.t.env_step < self.t.args.steps:
                rows += self._episode()
        finally:
            if self.worker is not None:
                self.worker.close()
            sys.setswitchinterval(switch)
        self._checkpoint()
        self.t.write_bundle()
        return rows

    def _warming_up(self) -> bool:
        return self.t.episodes < self.t.cfg.warmup_episodes

    def _act(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, bool]:
        if self._warming_up():
            if self.t.il is not None:  # IL rollouts (no noise) for ibrl*
                with torch.no_grad():
                    return self.t.il(to_torch(obs, self.t.device))[0].cpu().numpy(), True
            return self.t.rng.uniform(-1, 1, self.t.spec.action_dim).astype(np.float32), False
        with self.acting_lock:
            batch = to_torch(obs, self.t.device)
            action, info = self.agent.act(batch, explore=True, nets=self.acting)
        use_il = bool(info["use_il"][0])
        self.acts, self.il_acts = self.acts + 1, self.il_acts + int(use_il)
        return action[0].cpu().numpy(), use_il

    def _episode(self) -> list[dict[str, float]]:
        t, rows = self.t, []
        stacker = Stacker(t.spec)
        raw, _ = t.env.reset(seed=t.args.seed * 1_000_003 + t.episodes)
        frames = [stacker.reset(raw)]
        actions: list[np.ndarray] = []
        rewards: list[float] = []
        terminated = truncated = success = False
        while not (terminated or truncated) and t.env_step < t.args.steps:
            action, _ = self._act(frames[-1])
            raw, reward, terminated, truncated, info = t.env.step(action)
            frames.append(stacker.step(raw))
            actions.append(action)
            rewards.append(reward)
            success = success or bool(info["success"])
            t.env_step += 1
            self.agent.env_steps = t.env_step
            rows += self._after_step()
        obs = {k: np.stack([f[k] for f in frames]) for k in frames[0]}
        with self.data_lock:
            self.online.add_episode(obs, np.asarray(actions), np.asarray(rewards), terminated)
        t.episodes += 1
        self.ep_returns.append(float(np.sum(rewards)))
        self.ep_success.append(success)
        return rows

    def _after_step(self) -> list[dict[str, float]]:
        t, cfg, step = self.t, self.t.cfg, self.t.env_step
        if (
            not self._warming_up()
            and len(self.replay) >= cfg.min_buffer
            and step % cfg.update_freq == 0
        ):
            self.worker.request() if self.worker is not None else self._update()
        if step % cfg.log_every == 0:
            self._log()
        rows = [self._evaluate()] if step % cfg.eval_every == 0 or step == t.args.steps else []
        if step % cfg.checkpoint_every == 0:
            self._checkpoint()
        return rows

    def _sample(self) -> dict[str, Any]:
        cfg, rng = self.t.cfg, self.learner_rng if self.worker is not None else self.t.rng
        with self.data_lock:
            if self.on_device:
                return self.replay.sample_torch(cfg.batch_size, rng)
            batch = self.replay.sample(cfg.batch_size, rng)
        return batch_to_torch(batch, self.t.device)

    def _update(self) -> None:
        """One update call (on the learner thread with overlap); no host sync."""
        batches = [self._sample() for _ in range(self.t.cfg.num_critic_updates)]
        metrics = self.agent.update_tensors(batches)
        if self.acting is not None:
            with self.acting_lock:
                sync_acting_nets(self.acting, self.agent.acting_nets())
        with self.window_lock:
            for key, value in metrics.items():
                total = self.sums.get(key)
                self.sums[key] = value if total is None else total + value
            self.updates += 1

    def _drain(self) -> None:
        if self.worker is not None:
            self.worker.drain()

    def _log(self) -> None:
        elapsed = max(time.monotonic() - self.window_t0, 1e-9)
        with self.window_lock:
            sums, updates = to_floats(self.sums), self.updates
            self.sums, self.updates = {}, 0
        line: dict[str, Any] = {k: v / max(updates, 1) for k, v in sums.items()}
        line.update({
            "train/updates_per_s": updates * self.t.cfg.num_critic_updates / elapsed,
            "train/env_steps_per_s": self.t.cfg.log_every / elapsed,
            "buffer/online_size": len(self.online), "buffer/demo_size": len(self.t.demos),
            "ibrl/bc_selected_frac": self.il_acts / self.acts if self.acts else float("nan"),
            "train/episode_return": _mean(self.ep_returns),
            "train/success_rate": _mean([float(s) for s in self.ep_success]),
        })  # fmt: skip
        record = {"env_step": self.t.env_step, "update_step": self.agent.num_updates,
                  "t_wall": time.time(), "metrics": line}  # fmt: skip
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.t.sink.log({**line, "train/update_step": self.agent.num_updates}, self.t.env_step)
        self._reset_window()

    def _evaluate(self) -> dict[str, float]:
        self._drain()

        def policy(mode: SelectionMode | None) -> Any:
            def act(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, bool]:
                batch = to_torch(obs, self.t.device)
                action, info = self.agent.act(batch, explore=False, mode=mode)
                return action[0].cpu().numpy(), bool(info["use_il"][0])

            return act

        greedy = policy("ibrl") if self.agent.mode == "ibrl_soft" else None
        return self.t.evaluate_row(policy(None), self.agent.num_updates, greedy)

    def _checkpoint(self) -> None:
        self._drain()
        t = self.t
        directory = t.out / "checkpoints"
        directory.mkdir(parents=True, exist_ok=True)
        save_replay(directory / "replay.npz", self.online)
        save_checkpoint(directory / "latest.pt", {
            "agent": self.agent.state_dict(), "settings_json": t.settings.model_dump_json(),
            "spec": t.spec.to_json(), "progress": {"env_step": t.env_step, "episodes": t.episodes},
        })  # fmt: skip


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
