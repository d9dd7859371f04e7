"""Which per-step uncertainty signal predicts a failed rollout? ROC AUC per candidate.

    python bench/uncertainty.py                              # train, roll out, report
    python bench/uncertainty.py --bundle runs/x/policy.safetensors --episodes 200

Trains a partly trained IBRL policy on ``--env`` (``tandem record-demos`` then ``tandem
train --method ibrl --steps --steps`` with the ``cpu`` profile; reused when ``--out``
already holds it) unless ``--bundle`` names one, then rolls it out for ``--episodes``
episodes with the bridge's acting code (``learner.acting.BundlePolicy``), ``--explore``
as a training rollout does or deterministic as an evaluation does. At every step it
records each candidate of ``learner.uncertainty`` and, per episode, whether it succeeded.

Scores, and the AUC of each: the probability that a failed rollout scores higher than a
successful one (Mann-Whitney, ties count half; 0.5 is chance):

* ``running@t`` (the figure to read): among the rollouts still running after ``t`` steps
  (``--at``), the signal's mean over the last ``--window`` of them. This is the question an
  operator watching a rollout faces at step t, and it is not biased by length.
* ``first_mean`` / ``first_max`` over the first ``--first`` steps of every rollout: the
  per-episode aggregates, for reference. They are biased by length (a failed rollout runs
  to the time limit, a successful one ends early, so failures contribute later steps):
  the ``step`` row (the step index as a signal) shows how much of their AUC length alone
  gives; on ``running@t`` the step baseline is 0.5 by construction.

Prints one table (``--json``: one JSON object per (signal, aggregate, t), then a summary).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TANDEM = [sys.executable, "-m", "tandem"]
TARGET_AUC = 0.7
FIRST = ("first_mean", "first_max")


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    with open(log, "w") as err:
        res = subprocess.run(cmd, cwd=ROOT, stdout=err, stderr=err, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{log.read_text()[-4000:]}\nfailed ({res.returncode}): {cmd}")


def train(args: argparse.Namespace) -> Path:
    """The bundle of a partly trained IBRL run in ``--out`` (trained unless already there)."""
    out = args.out.resolve()
    bundle = out / "ibrl" / "policy.safetensors"
    if bundle.exists():
        print(f"reusing {bundle}", file=sys.stderr, flush=True)
        return bundle
    out.mkdir(parents=True, exist_ok=True)
    demos = out / "demos"
    if not demos.exists():
        cmd = [*TANDEM, "record-demos", "--env", args.env, "--episodes", str(args.demos),
               "--out", str(demos), "--cameras", "none", "--seed", "1000"]  # fmt: skip
        run(cmd, out / "demos.log")
    bc = [] if args.bc_steps is None else ["--bc-steps", str(args.bc_steps)]
    run([*TANDEM, "train", "--env", args.env, "--demos", str(demos), "--method", "ibrl",
         "--steps", str(args.steps), "--profile", "cpu", "--out", str(out / "ibrl"),
         "--eval-every", str(args.steps), "--eval-episodes", "5", "--seed", str(args.seed),
         "--device", "cpu", "--log-level", "WARNING", *bc], out / "train.log")  # fmt: skip
    return bundle


def untrained(args: argparse.Namespace) -> Path:
    """A bundle of a freshly initialised IBRL agent (cpu profile sizes, state observations):
    no training, for ``--smoke``-style checks that the measuring runs at all."""
    import torch

    from learner.bc import BCPolicy
    from learner.bundle import make_bundle
    from learner.envs import make_env, parse_env
    from learner.ibrl import IBRLAgent
    from learner.obs import ObsSpec
    from tandem.cli.commands.learn import PROFILE_DIR
    from tandem.settings import load_settings

    torch.manual_seed(args.seed)
    cfg = load_settings(PROFILE_DIR / "cpu.toml").learner.model_copy(update={"method": "ibrl"})
    env = make_env(parse_env(args.env), cameras=())
    obs, _ = env.reset(seed=0)
    dim = int(obs["state"].shape[0])
    spec = ObsSpec(state_dim=dim, action_dim=int(env.action_space.shape[0]), raw_state_dim=dim)
    il = BCPolicy(spec, hidden=cfg.bc_hidden_dim, layers=cfg.bc_layers, dropout=0.0)
    blob, _ = make_bundle(cfg, spec, agent=IBRLAgent(cfg, spec, il, "cpu"), il=il)
    path = args.out.resolve() / "untrained.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return path


def step_signals(policy: Any, obs: dict[str, np.ndarray], explore: bool) -> tuple[Any, dict]:
    """Act once as the bridge does; -> (action, {candidate: value or None})."""
    import torch

    from learner.obs import to_torch
    from learner.uncertainty import all_signals

    stacked = policy._stacker.reset(obs) if policy._fresh else policy._stacker.step(obs)
    policy._fresh = False
    with torch.no_grad():
        p = policy.propose_batch(to_torch(stacked, policy.device), explore=explore)
        values = all_signals(policy.rl, p, rng=policy._mc_rng)
    signals = {k: None if v is None else float(v[0]) for k, v in values.items()}
    return p.action[0].cpu().numpy(), signals


def roll_out(args: argparse.Namespace, bundle: Path) -> list[dict[str, Any]]:
    """``--episodes`` episodes: per episode its success and per-step signals."""
    import torch

    from learner.acting import load_policy
    from learner.envs import make_env, parse_env

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    policy = load_policy(bundle)
    if policy.rl is None:
        raise SystemExit(f"{bundle}: an IL-only bundle has no critic to measure")
    env = make_env(parse_env(args.env), cameras=(), time_limit=args.time_limit)
    episodes = []
    for ep in range(args.episodes):
        obs, _ = env.reset(seed=20_000 + ep)
        policy.reset()
        steps: list[dict[str, float | None]] = []
        success, done = False, False
        while not done:
            action, signals = step_signals(policy, obs, args.explore)
            obs, _, terminated, truncated, info = env.step(action)
            steps.append(signals)
            success = success or bool(info["success"])
            done = terminated or truncated
        episodes.append({"success": success, "steps": steps})
    return episodes


def auc(failed: list[float], succeeded: list[float]) -> float:
    """P(a failed episode scores higher than a successful one), ties half; 0.5 when either
    class is empty (no information)."""
    if not failed or not succeeded:
        return 0.5
    f, s = np.asarray(failed)[:, None], np.asarray(succeeded)[None, :]
    return float(((f > s).sum() + 0.5 * (f == s).sum()) / (f.size * s.size))


def scores(episodes: list[dict[str, Any]], name: str, how: str, t: int, window: int) -> tuple:
    """(episodes scored, their scores) for one aggregate of signal ``name`` (``step``: the
    step index, the baseline that only knows how long the episode has run)."""

    def values(e: dict[str, Any]) -> list[float]:
        return [float(i) if name == "step" else s[name] for i, s in enumerate(e["steps"])]

    if how == "running":  # still running after t steps: mean of the last `window` of them
        group = [e for e in episodes if len(e["steps"]) > t]
        return group, [float(np.mean(values(e)[t - window : t])) for e in group]
    head = [values(e)[:t] for e in episodes]
    agg = np.mean if how == "first_mean" else np.max
    return episodes, [float(agg(v)) for v in head]


def table(episodes: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One record per (candidate, aggregate, t) with a value at every step of every episode."""
    rows = []
    names = [*sorted({k for e in episodes for s in e["steps"] for k in s}), "step"]
    for name in names:
        if any(s.get(name, 0) is None for e in episodes for s in e["steps"]):
            continue  # the candidate does not exist for this policy (e.g. il_spread for mse)
        for how, t in [("running", t) for t in args.at] + [(h, args.first) for h in FIRST]:
            group, score = scores(episodes, name, how, t, args.window)
            failed = [x for x, e in zip(score, group, strict=True) if not e["success"]]
            won = [x for x, e in zip(score, group, strict=True) if e["success"]]
            rows.append({"signal": name, "aggregate": how, "t": t, "auc": auc(failed, won),
                         "failed": len(failed), "successes": len(won),
                         "mean_failed": _mean(failed), "mean_success": _mean(won),
                         "explore": args.explore})  # fmt: skip
    return rows


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def report(args: argparse.Namespace, episodes: list[dict[str, Any]], wall: float) -> None:
    from learner.uncertainty import CHOSEN

    rows = table(episodes, args)
    wins = sum(e["success"] for e in episodes)
    lengths = [len(e["steps"]) for e in episodes if e["success"]]
    summary = {"summary": True, "episodes": len(episodes), "successes": wins,
               "chosen": CHOSEN, "explore": args.explore, "wall_s": round(wall, 1),
               "success_length_median": float(np.median(lengths)) if lengths else None}  # fmt: skip
    if args.json:
        for r in rows:
            print(json.dumps(r))
        print(json.dumps(summary))
        return
    print(f"\n{len(episodes)} rollouts of {args.env} ({wins} successes, median length "
          f"{summary['success_length_median']}), explore={args.explore}; {wall:.0f} s")  # fmt: skip
    print(
        "running@t: rollouts still running after t steps, mean of the last "
        f"{args.window} steps; first_*: the first {args.first} steps of every rollout"
    )
    print(f"{'signal':<11} {'aggregate':<11} {'t':>3} {'AUC':>6} {'fail/succ':>9} "
          f"{'failed':>8} {'success':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['signal']:<11} {r['aggregate']:<11} {r['t']:>3} {r['auc']:>6.3f} "
              f"{r['failed']:>4}/{r['successes']:<4} {_fmt(r['mean_failed'])} "
              f"{_fmt(r['mean_success'])}")  # fmt: skip
    for r in rows:
        if r["signal"] == CHOSEN and r["aggregate"] == "running":
            met = "met" if r["auc"] >= TARGET_AUC else "NOT met"
            print(f"chosen {CHOSEN}, running@{r['t']}: AUC {r['auc']:.3f} "
                  f"(target >= {TARGET_AUC}: {met})")  # fmt: skip


def _fmt(value: float | None) -> str:
    return f"{'-':>8}" if value is None else f"{value:>8.4f}"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", default="sim:lift")
    p.add_argument("--bundle", type=Path, help="a policy bundle to measure (default: train one)")
    p.add_argument(
        "--untrained", action="store_true", help="measure an untrained agent (plumbing check)"
    )
    p.add_argument("--steps", type=int, default=3000, help="env steps of the IBRL run (3000)")
    p.add_argument("--bc-steps", type=int, default=None, help="IL pre-training steps (profile's)")
    p.add_argument("--demos", type=int, default=10, help="scripted demonstrations (10)")
    p.add_argument("--episodes", type=int, default=200, help="rollouts to record (200)")
    p.add_argument("--time-limit", type=int, default=50, help="steps per rollout (50)")
    p.add_argument("--at", default="10,15,20", help="steps t of the running@t scores")
    p.add_argument("--window", type=int, default=5, help="steps the running@t mean covers (5)")
    p.add_argument("--first", type=int, default=15, help="steps of the first_* scores (15)")
    p.add_argument("--explore", action="store_true", help="exploration noise, as in training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/uncertainty"))
    p.add_argument("--json", action="store_true", help="one JSON object per result line")
    args = p.parse_args()
    try:
        args.at = [int(t) for t in args.at.split(",")]
    except ValueError:
        p.error(f"--at: comma-separated step counts, got {args.at!r}")
    if min(args.episodes, args.first, args.time_limit, args.steps, args.window) < 1:
        p.error("--episodes, --first, --time-limit, --steps and --window must be >= 1")
    if min(args.at) < args.window:
        p.error(f"--at: every t must be >= --window ({args.window}), got {args.at}")
    return args


def main() -> None:
    args = parse_args()
    bundle = args.bundle or (untrained(args) if args.untrained else train(args))
    t0 = time.monotonic()
    episodes = roll_out(args, bundle)
    report(args, episodes, time.monotonic() - t0)


if __name__ == "__main__":
    main()
