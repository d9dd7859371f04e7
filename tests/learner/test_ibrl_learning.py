"""Learning test: IBRL with a few demos clearly beats the IL policy alone (CPU, fixed budget).

Task: ``tandem/PointReach-v0`` (sparse 0/1 reward, random start and goal, 20-step limit) with
five demos from a slow, noisy demonstrator. Imitating it runs out of time on far goals; IBRL
learns to move faster from the same demos within a few thousand env steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import learner.toy_env  # noqa: F401  (registers the env id)
from learner.demos import record_episode, resolve_policy, write_demo
from learner.envs import make_env, parse_env
from learner.train import TrainArgs, Trainer
from tandem.settings import load_settings

LEARNER = {
    "obs": "state", "threads": 1, "hidden_dim": 64, "state_actor_layers": 2, "critic_layers": 2,
    "num_q": 2, "num_k": 2, "batch_size": 64, "update_freq": 1, "num_critic_updates": 2,
    "buffer_size": 20_000, "warmup_episodes": 5, "min_buffer": 64, "lr": 1e-3,
    "bc_steps": 500, "bc_hidden_dim": 64, "bc_layers": 2, "bc_dropout": 0.0, "bc_lr": 1e-3,
    "eval_every": 4000, "eval_episodes": 50, "log_every": 1000, "checkpoint_every": 100_000,
    "device": "cpu",
}  # fmt: skip
STEPS = 4000


def record(root: Path, episodes: int, seed: int) -> None:
    spec = parse_env("gym:tandem/PointReach-v0")
    env = make_env(spec)
    policy = resolve_policy("learner.toy_env:NoisyReachExpert", spec, {"seed": seed})
    kept, attempt = 0, 0
    while kept < episodes:
        steps, final, summary = record_episode(env, policy, seed=seed * 1000 + attempt)
        attempt += 1
        if summary["success"]:
            write_demo(root, env, spec, steps, final_obs=final, summary=summary, policy_name="toy")
            kept += 1


def train(method: str, demos: Path, out: Path, seed: int, **overrides: object) -> float:
    settings = load_settings(None, learner={**LEARNER, "method": method, **overrides})
    args = TrainArgs(parse_env("gym:tandem/PointReach-v0"), demos, STEPS, out, seed=seed)
    rows = Trainer(settings, args).run()
    return rows[-1]["success_rate"]


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_ibrl_beats_the_il_policy_alone(tmp_path: Path) -> None:
    """With the reference selection rule and with the confidence bound (select_lcb), which
    must not keep the IL policy in charge where the critic has learnt better."""
    seed = 0
    record(tmp_path / "demos", 5, seed)
    bc = train("bc", tmp_path / "demos", tmp_path / "bc", seed)
    ibrl = train("ibrl", tmp_path / "demos", tmp_path / "ibrl", seed)
    lcb = train("ibrl", tmp_path / "demos", tmp_path / "lcb", seed, select_lcb=1.0)
    assert ibrl >= bc + 0.2, f"IBRL {ibrl:.2f} vs IL alone {bc:.2f}"
    assert lcb >= bc + 0.2, f"IBRL with select_lcb {lcb:.2f} vs IL alone {bc:.2f}"
