"""Mixed-quality datasets in sim (``tandem make-dataset``): scripted-expert, noisy-expert,
partly random, failed and random episodes, every one kept with its reward and outcome.

A mix is ``KIND[@PARAM]:COUNT`` items separated by commas, e.g.
``expert:20,noisy@0.3:20,noisy@0.6:20,partial:20,failed:20,random:10``:

* ``expert``: the task's scripted expert (``sim.expert_for``).
* ``noisy@S``: the expert with Gaussian noise of std S added to every action (clipped).
* ``partial``: the expert for a random 0-7 steps, then uniform random actions.
* ``failed``: the expert with the gripper held open: it reaches the object but never
  grasps (a systematic operator mistake).
* ``random``: uniform random actions.

Sim actions are already in [-1, 1], so behaviours answer in those units.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learner.demos import record_episode
from learner.demos import write_episode as write_store_episode
from learner.envs import CanonicalEnv, EnvSpec, sim_expert
from tandem.episodes import StepData
from tandem.messages import EpisodeKind

log = logging.getLogger(__name__)
KINDS = ("expert", "noisy", "partial", "failed", "random")
GRIPPER = 6  # index of the gripper command in the sim's 7-D action


class MixError(ValueError):
    """A --mix string is malformed."""


@dataclass(frozen=True)
class MixItem:
    kind: str
    param: float
    count: int

    @property
    def label(self) -> str:
        return f"{self.kind}@{self.param:g}" if self.kind == "noisy" else self.kind


def parse_mix(text: str) -> list[MixItem]:
    """``KIND[@PARAM]:COUNT,...`` -> items (noisy needs @STD)."""
    items = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        head, sep, count = part.rpartition(":")
        kind, at, param = head.partition("@")
        if not sep or kind not in KINDS or not count.isdigit() or (kind == "noisy") != bool(at):
            raise MixError(f"bad mix item {part!r}: expected KIND[@STD]:COUNT, KIND in {KINDS} "
                           "(noisy needs @STD)")  # fmt: skip
        try:
            value = float(param) if at else 0.0
        except ValueError:
            raise MixError(f"bad noise std in {part!r}") from None
        items.append(MixItem(kind, value, int(count)))
    if not items:
        raise MixError("empty mix")
    return items


def behaviour(item: MixItem, task: str, rng: np.random.Generator) -> Callable[[Any], np.ndarray]:
    """A fresh per-episode policy ``raw obs -> action in [-1, 1]`` for a mix item."""
    expert = sim_expert(task)
    dim = 7
    switch = int(rng.integers(0, 8))
    steps = [0]

    def act(obs: Any) -> np.ndarray:
        t, steps[0] = steps[0], steps[0] + 1
        if item.kind == "random" or (item.kind == "partial" and t >= switch):
            return rng.uniform(-1, 1, dim).astype(np.float32)
        action = np.asarray(expert(obs), np.float32).copy()
        if item.kind == "noisy":
            action = action + rng.normal(0.0, item.param, dim).astype(np.float32)
        if item.kind == "failed":
            action[GRIPPER] = -1.0
        return np.clip(action, -1.0, 1.0)

    return act


def write_episode(
    root: Path, env: CanonicalEnv, env_spec: EnvSpec, steps: list[StepData], *,
    final_obs: dict[str, np.ndarray], summary: dict[str, Any], label: str,
) -> Path:  # fmt: skip
    """Write one episode (any outcome) into the store under ``root``."""
    return write_store_episode(
        root, env_spec, steps, final_obs=final_obs,
        kind=EpisodeKind.DEMO if label == "expert" else EpisodeKind.ROLLOUT,
        name=label.replace("@", "-"),
        extra={"action_dim": env.action_dim, "behaviour": label,
               "recorder": "tandem make-dataset"},
        success=bool(summary["success"]), terminated=summary["terminated"],
        truncated=summary["truncated"],
    )  # fmt: skip


def make_dataset(
    env: CanonicalEnv, env_spec: EnvSpec, mix: list[MixItem], out: Path, seed: int
) -> dict[str, tuple[int, int]]:
    """Record the mix into ``out``; returns label -> (episodes, successes)."""
    if env_spec.kind != "sim":
        raise MixError("make-dataset needs a sim env (the scripted experts are sim's)")
    rng = np.random.default_rng(seed)
    counts: dict[str, tuple[int, int]] = {}
    episode = 0
    for item in mix:
        done = wins = 0
        for _ in range(item.count):
            policy = behaviour(item, env_spec.name, rng)
            steps, final, summary = record_episode(env, policy, seed=seed * 100_003 + episode)
            write_episode(out, env, env_spec, steps, final_obs=final, summary=summary,
                          label=item.label)  # fmt: skip
            episode, done, wins = episode + 1, done + 1, wins + int(summary["success"])
        counts[item.label] = (done, wins)
        log.info("%s: %d episodes, %d successful", item.label, done, wins)
    return counts
