"""DAgger and HG-DAgger with a scripted expert: ``tandem train --method dagger|hg_dagger``.

Round 0 is behaviour cloning on the demonstrations (the trainer's IL pre-training). Every
later round rolls the current policy out for ``dagger_episodes`` episodes, has the expert
label states, adds the labelled states to the aggregate (the demos and every label so far)
and trains a new IL policy from scratch on the aggregate (``bc_steps`` steps, state
normaliser fit on the aggregate), then evaluates it. Rounds go on until ``--steps`` env steps
of rollouts have been spent (the last episode is cut at the budget).

* ``dagger``: the expert labels every visited state. With ``dagger_beta`` > 0 the executed
  action of a step of round i (i >= 1) is the expert's with probability
  ``dagger_beta * dagger_beta_decay ** (i - 1)`` (Ross et al.'s beta mixture), else the
  policy's; the default 0 always executes the policy's action.
* ``hg_dagger``: the policy acts until the gate fires, then the expert acts until the
  episode ends, as the scripted operator does after a take-over. The scripted expert stands
  in for the human: the gate fires when the expert's action and the policy's differ by more
  than ``hg_dagger_threshold`` (L2, actions in [-1, 1]) for ``hg_dagger_patience`` steps in a
  row (the first of them is not corrected), or when the hand (``info["ee_pos"]``)
  moved less than ``hg_dagger_stall_m`` in ``hg_dagger_stall_steps`` steps (the operator's
  stall rule). Only the correction segment is labelled and aggregated.

Expert labels: every state the expert labels counts once, and every demo transition counts
as one label. The action gate reads the expert's action at every policy step (the notes:
"needs the expert's action, so not truly gated"); those reads are not labels (nothing is
aggregated from them) and are counted apart as ``expert_queries``.

Writes ``dagger.csv`` (one row per round: :data:`LOG_FIELDS`) next to the usual ``eval.csv``
(one row per round, ``env_step`` = rollout steps so far) and ``policy.safetensors`` (an
IL-only bundle of the last policy). Resuming is not supported.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from learner.bundle import make_bundle
from learner.demos import load_demos
from learner.envs import CanonicalEnv, EnvSpec
from learner.il import ILPolicy, il_update
from learner.obs import ObsSpec, Stacker, stack_episode, to_torch
from learner.train import TrainArgs, Trainer
from tandem.settings import Settings
from tandem.settings.learner import LearnerSettings

log = logging.getLogger(__name__)

DAGGER_METHODS = ("dagger", "hg_dagger")
Expert = Callable[[Any], np.ndarray]  # the env's raw observation -> action in env units
Obs = dict[str, np.ndarray]
LOG_FIELDS = [
    "round", "env_step", "expert_labels", "demo_labels", "rollout_labels", "aggregate_size",
    "expert_queries", "episodes", "interventions", "beta", "success_rate", "mean_return",
    "wall_s",
]  # fmt: skip


class ExpertError(ValueError):
    """``--expert`` cannot be loaded, or it does not answer like an expert of this env."""


# --------------------------------------------------------------------------- the expert
def load_expert(text: str, env: EnvSpec) -> Expert:
    """``MODULE:ATTR`` -> the expert. ATTR may be a callable ``obs -> action``, an object with
    ``get_action(obs)``, a class (instantiated without arguments) or a factory with a ``task``
    parameter (called with the sim task, so ``sim:expert_for`` works on ``sim:*`` envs)."""
    module_name, sep, attr = text.partition(":")
    if not sep or not module_name or not attr:
        raise ExpertError(f"--expert must be MODULE:ATTR (e.g. sim:expert_for), got {text!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import runs arbitrary code: report whatever it raised
        raise ExpertError(
            f"--expert {text}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    if not hasattr(module, attr):
        raise ExpertError(f"--expert {text}: module {module_name!r} has no attribute {attr!r}")
    return _as_expert(text, getattr(module, attr), env)


def _as_expert(text: str, obj: Any, env: EnvSpec) -> Expert:
    try:
        if inspect.isclass(obj):
            obj = obj()
        elif inspect.isfunction(obj) and "task" in inspect.signature(obj).parameters:
            if env.kind != "sim":
                raise ExpertError(f"--expert {text} is a task factory; it needs a sim:TASK env")
            obj = obj(task=env.name)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ExpertError):
            raise
        raise ExpertError(f"--expert {text}: cannot build the expert: {exc}") from None
    if hasattr(obj, "get_action") and callable(obj.get_action):
        return obj.get_action
    if not callable(obj):
        raise ExpertError(
            f"--expert {text}: a {type(obj).__name__} is not callable; expected a callable "
            "obs -> action, an object with get_action(obs), a class or a task factory"
        )
    return obj


class Labeller:
    """Asks the expert about the env's current raw observation; counts the questions."""

    def __init__(self, expert: Expert, env: CanonicalEnv, name: str = "expert"):
        self.expert, self.env, self.name = expert, env, name
        self.queries = 0

    def reset(self) -> None:
        """Start of an episode: reset the expert when it has a ``reset()``."""
        owner = getattr(self.expert, "__self__", self.expert)
        reset = getattr(owner, "reset", None)
        if callable(reset):
            reset()

    def ask(self) -> np.ndarray:
        """The expert's action (A,) for the current state, in [-1, 1]."""
        self.queries += 1
        try:
            answer = np.asarray(self.expert(self.env.raw_obs), np.float64)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise ExpertError(f"--expert {self.name} failed on an observation: {exc}") from exc
        if answer.shape != (self.env.action_dim,) or not np.all(np.isfinite(answer)):
            raise ExpertError(
                f"--expert {self.name} answered an array of shape {answer.shape} "
                f"(finite: {bool(np.all(np.isfinite(answer)))}); the env needs "
                f"{self.env.action_dim} finite numbers"
            )
        return self.env.unscale(answer)


# ------------------------------------------------------------------- who acts at a step
Ask = Callable[[], np.ndarray]


class Driver(Protocol):
    """Per step: which action is executed, and the label (None: the state is not labelled)."""

    take_over: int | None  # the step at which the expert took over this episode, if it did

    def begin(self) -> None: ...

    def choose(
        self, t: int, a_policy: np.ndarray, ask: Ask, ee_pos: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]: ...


def beta_at(beta: float, decay: float, round_: int) -> float:
    """The beta mixture of round ``round_`` (1-based): ``beta * decay ** (round_ - 1)``."""
    return beta * decay ** max(round_ - 1, 0)


class DAggerDriver:
    """Every visited state is labelled; the expert acts with probability ``beta``."""

    def __init__(self, beta: float, rng: np.random.Generator):
        self.beta, self.rng = beta, rng
        self.take_over: int | None = None  # never: the same interface as HGDAggerDriver

    def begin(self) -> None:
        """Nothing carries over between episodes."""

    def choose(
        self, t: int, a_policy: np.ndarray, ask: Ask, ee_pos: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        label = ask()
        expert_acts = self.beta > 0 and self.rng.random() < self.beta
        return (label if expert_acts else a_policy), label


@dataclass
class HGDAggerDriver:
    """The policy acts until the gate fires; the expert then acts, and labels, to the end."""

    threshold: float | None
    stall_steps: int | None
    stall_m: float
    patience: int = 1
    take_over: int | None = None
    reason: str | None = None
    _hand: deque[np.ndarray] = field(default_factory=deque)
    _over: int = 0  # consecutive steps with the action gap over the threshold

    def begin(self) -> None:
        self.take_over, self.reason, self._over = None, None, 0
        self._hand = deque(maxlen=self.stall_steps or 1)

    def choose(
        self, t: int, a_policy: np.ndarray, ask: Ask, ee_pos: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if self.take_over is None:
            self.reason = self.gate(a_policy, ask, ee_pos)
            if self.reason is None:
                return a_policy, None
            self.take_over = t
            log.debug("expert takes over at step %d: %s", t, self.reason)
        label = ask()
        return label, label

    def gate(self, a_policy: np.ndarray, ask: Ask, ee_pos: np.ndarray | None) -> str | None:
        """Why the expert takes over now, or None."""
        if self.threshold is not None:
            gap = float(np.linalg.norm(ask() - a_policy))
            self._over = self._over + 1 if gap > self.threshold else 0
            if self._over >= self.patience:
                return f"action gap {gap:.2f} > {self.threshold:g} for {self._over} steps"
        if self.stall_steps is None or ee_pos is None:
            return None
        self._hand.append(np.asarray(ee_pos, np.float64))
        if len(self._hand) < self.stall_steps:
            return None
        moved = max(float(np.linalg.norm(p - self._hand[0])) for p in self._hand)
        if moved < self.stall_m:
            return f"stalled: the hand moved {moved * 1000:.0f} mm in {self.stall_steps} steps"
        return None


# ------------------------------------------------------------------------- rollouts
@dataclass
class Rollout:
    """One policy rollout as the expert saw it."""

    obs: Obs  # the policy's (stacked) observation at each step, [T, ...]
    actions: np.ndarray  # [T, A] the executed actions, in [-1, 1]
    labels: np.ndarray  # [T, A] the expert's label; NaN where the state was not labelled
    labelled: np.ndarray  # [T] bool
    success: bool
    ret: float
    take_over: int | None  # hg_dagger: the step at which the expert took over

    def __len__(self) -> int:
        return len(self.labelled)

    def labelled_part(self) -> tuple[Obs, np.ndarray]:
        """(obs [N, ...], labels [N, A]) of the labelled steps."""
        mask = self.labelled
        return {k: v[mask] for k, v in self.obs.items()}, self.labels[mask]


def roll_out(
    env: CanonicalEnv, spec: ObsSpec, act: Callable[[Obs], np.ndarray], labeller: Labeller,
    driver: Driver, *, seed: int, max_steps: int,
) -> Rollout:  # fmt: skip
    """One episode of ``act`` (stacked obs -> action in [-1, 1]) with ``driver`` deciding who
    acts and which states the expert labels; at most ``max_steps`` steps."""
    stacker = Stacker(spec)
    raw, info = env.reset(seed=seed)
    labeller.reset()
    driver.begin()
    obs = stacker.reset(raw)
    frames: list[Obs] = []
    labels: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    nan = np.full(spec.action_dim, np.nan, np.float32)
    done, success, ret = False, False, 0.0
    while not done and len(frames) < max_steps:
        ask = _Question(labeller)  # one question per state, however often it is asked
        action, label = driver.choose(len(frames), act(obs), ask, info.get("ee_pos"))
        frames.append(obs)
        labels.append(nan if label is None else label)
        actions.append(np.asarray(action, np.float32))
        raw, reward, terminated, truncated, info = env.step(action)
        obs = stacker.step(raw)
        ret += reward
        success = success or bool(info["success"])
        done = terminated or truncated
    stacked = {k: np.stack([f[k] for f in frames]) for k in frames[0]}
    label_arr = np.asarray(labels, np.float32)
    labelled = np.asarray(~np.isnan(label_arr).any(-1))
    return Rollout(
        stacked, np.asarray(actions), label_arr, labelled, success, ret, driver.take_over
    )


class _Question:
    """The expert's answer about the current state, asked at most once."""

    def __init__(self, labeller: Labeller):
        self.labeller = labeller
        self.answer: np.ndarray | None = None

    def __call__(self) -> np.ndarray:
        if self.answer is None:
            self.answer = self.labeller.ask()
        return self.answer


# ------------------------------------------------------------------------ the data
class Aggregate:
    """The imitation data: (obs, action) pairs, demos first, then every expert label."""

    def __init__(self) -> None:
        self.obs: Obs = {}
        self.actions = np.zeros((0, 0), np.float32)

    def __len__(self) -> int:
        return len(self.actions)

    def add(self, obs: Obs, actions: np.ndarray) -> None:
        """Append N pairs: obs {key: [N, ...]}, actions [N, A]."""
        actions = np.asarray(actions, np.float32)
        if any(len(v) != len(actions) for v in obs.values()):
            raise ValueError("obs and actions must have the same length")
        if not len(self):
            self.obs = {k: np.asarray(v).copy() for k, v in obs.items()}
            self.actions = actions.copy()
            return
        self.obs = {k: np.concatenate([self.obs[k], obs[k]]) for k in self.obs}
        self.actions = np.concatenate([self.actions, actions])

    def sample(self, size: int, rng: np.random.Generator) -> tuple[Obs, np.ndarray]:
        idx = rng.integers(0, len(self), size)
        return {k: v[idx] for k, v in self.obs.items()}, self.actions[idx]


def demo_aggregate(trainer: Trainer) -> Aggregate:
    """The demos' (obs, action) pairs, stacked as the policy sees them."""
    spec, data = trainer.spec, Aggregate()
    demos = load_demos(trainer.args.demos, action_dim=spec.action_dim, cameras=spec.cameras)
    for demo in demos:
        obs = stack_episode(spec, demo.states[:, : spec.raw_state_dim], demo.images)
        data.add({k: v[: len(demo)] for k, v in obs.items()}, demo.actions)
    return data


def fit(
    il: ILPolicy, data: Aggregate, cfg: LearnerSettings, rng: np.random.Generator
) -> dict[str, float]:
    """``cfg.bc_steps`` behaviour-cloning steps (the kind's own loss, ``learner.il_kind``) on
    minibatches of ``data``; the last metrics."""
    device = next(il.parameters()).device
    optimizer = torch.optim.Adam(il.parameters(), lr=cfg.bc_lr)
    metrics: dict[str, float] = {}
    for _ in range(cfg.bc_steps):
        obs, actions = data.sample(cfg.batch_size, rng)
        batch = to_torch(obs, device, batch=True)
        target = torch.as_tensor(actions, device=device)
        metrics = il_update(il, optimizer, batch, target, cfg.bc_grad_clip)
    il.eval()
    return metrics


# ------------------------------------------------------------------------ the runner
def make_driver(trainer: Trainer) -> DAggerDriver | HGDAggerDriver:
    cfg = trainer.cfg
    if cfg.method == "dagger":
        return DAggerDriver(beta_at(cfg.dagger_beta, cfg.dagger_beta_decay, 1), trainer.rng)
    return HGDAggerDriver(cfg.hg_dagger_threshold, cfg.hg_dagger_stall_steps,
                          cfg.hg_dagger_stall_m, cfg.hg_dagger_patience)  # fmt: skip


class DAggerRun:
    """Rounds of roll out -> label -> aggregate -> refit -> evaluate, on a ``Trainer``."""

    def __init__(self, trainer: Trainer, expert: Expert, expert_name: str = "expert"):
        if trainer.cfg.method not in DAGGER_METHODS or trainer.il is None:
            raise ValueError(f"method {trainer.cfg.method!r} is not one of {DAGGER_METHODS}")
        self.t, self.cfg = trainer, trainer.cfg
        self.data = demo_aggregate(trainer)
        self.demo_labels = len(self.data)
        self.labeller = Labeller(expert, trainer.env, expert_name)
        self.driver = make_driver(trainer)
        self.round, self.rollout_labels, self.interventions = 0, 0, 0
        self.log_path = trainer.out / "dagger.csv"
        with open(self.log_path, "w", newline="") as f:
            csv.writer(f).writerow(LOG_FIELDS)

    @property
    def expert_labels(self) -> int:
        return self.demo_labels + self.rollout_labels

    def run(self) -> list[dict[str, float]]:
        """Round 0 (BC on the demos) and rounds until the env-step budget; eval rows."""
        rows = [self.evaluate()]
        while self.t.env_step < self.t.args.steps:
            self.collect()
            self.refit()
            rows.append(self.evaluate())
        self.write_bundle()
        return rows

    def act(self, obs: Obs) -> np.ndarray:
        assert self.t.il is not None
        with torch.no_grad():
            return self.t.il(to_torch(obs, self.t.device))[0].cpu().numpy()

    def collect(self) -> list[Rollout]:
        """One round's rollouts; their labelled states join the aggregate."""
        t, cfg = self.t, self.cfg
        self.round += 1
        if isinstance(self.driver, DAggerDriver):
            self.driver.beta = beta_at(cfg.dagger_beta, cfg.dagger_beta_decay, self.round)
        rollouts = []
        for _ in range(cfg.dagger_episodes):
            budget = t.args.steps - t.env_step
            if budget <= 0:
                break
            seed = t.args.seed * 1_000_003 + t.episodes
            r = roll_out(t.env, t.spec, self.act, self.labeller, self.driver, seed=seed,
                         max_steps=budget)  # fmt: skip
            t.env_step, t.episodes = t.env_step + len(r), t.episodes + 1
            obs, labels = r.labelled_part()
            if len(labels):
                self.data.add(obs, labels)
            self.rollout_labels += len(labels)
            self.interventions += int(r.take_over is not None)
            rollouts.append(r)
        log.info("round %d: %d rollouts, %d steps, %d labelled; aggregate %d", self.round,
                 len(rollouts), sum(len(r) for r in rollouts),
                 sum(int(r.labelled.sum()) for r in rollouts), len(self.data))  # fmt: skip
        return rollouts

    def refit(self) -> dict[str, float]:
        """A new IL policy trained from scratch on the aggregate (normaliser refit on it)."""
        cfg = self.cfg
        il = self.t._make_il()
        il.normalizer.fit(self.data.obs["state"])
        metrics = fit(il, self.data, cfg, self.t.rng)
        self.t.il = il
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Evaluate the current policy (eval.csv) and log it against the labels (dagger.csv)."""
        row = self.t.evaluate_row(lambda obs: (self.act(obs), True), update_step=self.round)
        beta = self.driver.beta if isinstance(self.driver, DAggerDriver) else 0.0
        record = {
            "round": self.round, "env_step": self.t.env_step, "expert_labels": self.expert_labels,
            "demo_labels": self.demo_labels, "rollout_labels": self.rollout_labels,
            "aggregate_size": len(self.data), "expert_queries": self.labeller.queries,
            "episodes": self.t.episodes, "interventions": self.interventions,
            "beta": beta if self.round else 0.0, "success_rate": row["success_rate"],
            "mean_return": row["mean_return"], "wall_s": round(time.monotonic() - self.t.t0, 2),
        }  # fmt: skip
        with open(self.log_path, "a", newline="") as f:
            csv.writer(f).writerow([record[k] for k in LOG_FIELDS])
        log.info("round %d: success %.2f with %d expert labels", self.round,
                 row["success_rate"], self.expert_labels)  # fmt: skip
        return {**row, "expert_labels": self.expert_labels}

    def write_bundle(self) -> None:
        """The last policy as an IL-only bundle (``policy.safetensors``)."""
        assert self.t.il is not None
        blob, _ = make_bundle(self.cfg, self.t.spec, agent=None, il=self.t.il, il_only=True)
        tmp = self.t.out / "policy.safetensors.tmp"
        tmp.write_bytes(blob)
        tmp.replace(self.t.out / "policy.safetensors")


class DAggerTrainer(Trainer):
    """``tandem train --method dagger|hg_dagger``: the trainer (env, demos, IL pre-training,
    run directory) with the DAgger rounds as its loop."""

    def __init__(
        self, settings: Settings, args: TrainArgs, expert: Expert, expert_name: str = "expert"
    ):
        if settings.learner.method not in DAGGER_METHODS:
            raise ValueError(f"DAggerTrainer runs {DAGGER_METHODS}, not {settings.learner.method}")
        if args.resume:
            raise ValueError(f"method {settings.learner.method} cannot resume a run")
        super().__init__(settings, args)
        self.expert, self.expert_name = expert, expert_name

    def _run_loop(self, state: dict[str, Any] | None) -> list[dict[str, float]]:
        return DAggerRun(self, self.expert, self.expert_name).run()


def train_dagger(
    settings: Settings, env: EnvSpec, demos: Path, steps: int, out: Path, *, expert: str,
    seed: int = 0,
) -> list[dict[str, float]]:  # fmt: skip
    """Python API: load ``expert`` (MODULE:ATTR) and run; the eval rows."""
    args = TrainArgs(env, demos, steps, out, seed)
    return DAggerTrainer(settings, args, load_expert(expert, env), expert).run()
