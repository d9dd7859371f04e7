"""Success rate against env steps of IBRL and its baselines on the sim tasks, over seeds.

    python bench/sample_efficiency.py                       # 3 seeds x 4 methods x 2 tasks
    python bench/sample_efficiency.py --envs sim:lift --seeds 0 --methods ibrl,bc --steps 4000

Records ``--demos`` scripted demonstrations per task (state only), then runs ``tandem train``
for every (task, method, seed) with the ``cpu`` profile (or ``--profile``), ``--jobs`` runs
at a time (in the order of ``--methods``). Warm-up rollouts count as env steps. A run that
already finished in ``--out`` is reused, so an interrupted benchmark continues where it
stopped; ``--report-only`` writes the files from the finished runs alone.

Writes ``results.csv`` (one row per eval point and run) and ``success.png`` (mean success
against env steps with the min-max band over seeds) into ``--out``, and prints a table of the
final figures with the targets of issue 12: the profile's IBRL method at least 0.9 at the
end, and at least 0.2 above BC and RLPD (with ``--json``: one JSON object per (task, method)
instead). Progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TANDEM = [sys.executable, "-m", "tandem"]
FIELDS = ["env", "method", "seed", "env_step", "success_rate", "greedy_success_rate", "wall_s"]
TARGET_SUCCESS, TARGET_MARGIN = 0.9, 0.2


@dataclass(frozen=True)
class Run:
    env: str
    method: str
    seed: int

    def slug(self) -> str:
        return f"{self.env.replace(':', '-')}/{self.method}/seed{self.seed}"


def run(cmd: list[str], log: Path | None = None) -> None:
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    with open(log or os.devnull, "w") as err:
        res = subprocess.run(
            cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env, check=False
        )
    if res.returncode != 0:
        tail = log.read_text()[-4000:] if log else ""
        raise SystemExit(f"{tail}\ncommand failed with exit status {res.returncode}: {cmd}")


def record_demos(args: argparse.Namespace, env: str, out: Path) -> Path:
    demos = out / env.replace(":", "-") / "demos"
    if not demos.exists():
        run([*TANDEM, "record-demos", "--env", env, "--episodes", str(args.demos),
             "--out", str(demos), "--cameras", "none", "--seed", "1000"])  # fmt: skip
    return demos


def finished(run_dir: Path, steps: int) -> list[dict[str, str]] | None:
    """The eval.csv rows of a run that already reached ``steps`` (bc: evaluated), else None."""
    path = run_dir / "eval.csv"
    if not (run_dir / "policy.safetensors").exists() or not path.exists():
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    done = rows and (run_dir.parent.name == "bc" or int(rows[-1]["env_step"]) >= steps)
    return rows if done else None


def train(args: argparse.Namespace, r: Run, demos: Path, out: Path) -> list[dict[str, str]]:
    """Run ``tandem train`` for one (task, method, seed); its eval.csv rows. A run that
    already finished in ``--out`` is reused; with ``--report-only`` a missing one is skipped."""
    run_dir = out / r.slug()
    reused = finished(run_dir, args.steps)
    if reused is not None or args.report_only:
        print(f"{r.slug()}: {'reused' if reused else 'missing'}", file=sys.stderr, flush=True)
        return reused or []
    shutil.rmtree(run_dir, ignore_errors=True)
    bc_steps = [] if args.bc_steps is None else ["--bc-steps", str(args.bc_steps)]
    t0 = time.monotonic()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    run([*TANDEM, "train", "--env", r.env, "--demos", str(demos), "--method", r.method,
         "--steps", str(args.steps), "--profile", args.profile, "--out", str(run_dir),
         "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
         "--seed", str(r.seed), "--device", args.device, *bc_steps,
         "--log-level", "WARNING"], log=run_dir.parent / f"seed{r.seed}.log")  # fmt: skip
    print(f"{r.slug()}: {time.monotonic() - t0:.0f} s wall", file=sys.stderr, flush=True)
    with open(run_dir / "eval.csv") as f:
        return list(csv.DictReader(f))


def rows_of(r: Run, evals: list[dict[str, str]], steps: int) -> list[dict[str, object]]:
    """One row per eval point; BC (evaluated once, it does not train on env steps) is
    repeated at the last step so that every method has a figure at the budget."""
    rows = [
        {"env": r.env, "method": r.method, "seed": r.seed, "env_step": int(e["env_step"]),
         "success_rate": float(e["success_rate"]),
         "greedy_success_rate": e.get("greedy_success_rate") or "", "wall_s": float(e["wall_s"])}
        for e in evals
    ]  # fmt: skip
    if r.method == "bc" and rows:
        rows.append({**rows[-1], "env_step": steps})
    return rows


def default_method(profile: str) -> str:
    """The IBRL method the profile trains when ``--method`` is not given."""
    sys.path.insert(0, str(ROOT))
    from tandem.cli.commands.learn import PROFILE_DIR
    from tandem.settings import load_settings

    return load_settings(PROFILE_DIR / f"{profile}.toml").learner.method


def summarise(rows: list[dict[str, object]], steps: int) -> dict[tuple[str, str], list[float]]:
    """(env, method) -> the final success rate of each seed."""
    final: dict[tuple[str, str], dict[int, tuple[int, float]]] = {}
    for row in rows:
        key, seed = (str(row["env"]), str(row["method"])), int(str(row["seed"]))
        step, value = int(str(row["env_step"])), float(str(row["success_rate"]))
        if step <= steps and step >= final.setdefault(key, {}).get(seed, (-1, 0.0))[0]:
            final[key][seed] = (step, value)
    return {key: [v for _, v in per_seed.values()] for key, per_seed in final.items()}


def verdicts(
    final: dict[tuple[str, str], list[float]], ibrl: str
) -> Iterable[tuple[str, str, float, bool]]:
    """(env, check, value, met) for the targets of issue 12."""
    for env in sorted({e for e, _ in final}):
        if (env, ibrl) not in final:
            continue
        mean = _mean(final[(env, ibrl)])
        yield env, f"{ibrl} mean success >= {TARGET_SUCCESS}", mean, mean >= TARGET_SUCCESS
        for other in ("bc", "rlpd"):
            if (env, other) in final:
                gap = mean - _mean(final[(env, other)])
                yield env, f"{ibrl} - {other} >= {TARGET_MARGIN}", gap, gap >= TARGET_MARGIN


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--envs", default="sim:lift,sim:drawer")
    p.add_argument("--methods", default="ibrl,ibrl_soft,rlpd,bc")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--steps", type=int, default=10_000, help="env step budget per run")
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--bc-steps", type=int, default=None, help="IL pre-training steps (profile's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=2, help="training runs at a time")
    p.add_argument("--out", type=Path, default=Path("runs/sample_efficiency"))
    p.add_argument("--json", action="store_true", help="print one JSON line per (task, method)")
    p.add_argument(
        "--report-only", action="store_true", help="train nothing: report the finished runs"
    )
    return p.parse_args()


def main() -> None:
    args = parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    envs, methods = args.envs.split(","), args.methods.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [Run(e, m, s) for m in methods for e in envs for s in seeds]
    demos = {env: record_demos(args, env, out) for env in envs}
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        evals = list(pool.map(lambda r: train(args, r, demos[r.env], out), runs))
    rows = [row for r, e in zip(runs, evals, strict=True) for row in rows_of(r, e, args.steps)]
    write_csv(out / "results.csv", rows)
    title = (f"{args.profile} profile, {args.demos} demos, seeds {args.seeds}, "
             f"{args.eval_episodes} eval episodes per point")  # fmt: skip
    sys.path.insert(0, str(ROOT))
    from learner.plot import plot_success

    plot_success(out / "success.png", rows, title)
    report(args, rows, time.monotonic() - t0, out)


def report(args: argparse.Namespace, rows: list[dict[str, object]], wall: float, out: Path) -> None:
    final = summarise(rows, args.steps)
    ibrl = default_method(args.profile)
    if args.json:
        for (env, method), values in sorted(final.items()):
            print(json.dumps({"env": env, "method": method, "env_step": args.steps,
                              "success_mean": _mean(values), "success_min": min(values),
                              "success_max": max(values), "seeds": len(values),
                              "default_ibrl": method == ibrl}))  # fmt: skip
        return
    print(f"\nsuccess at {args.steps} env steps ({args.profile} profile, {args.demos} demos, "
          f"seeds {args.seeds}, {args.eval_episodes} eval episodes; "
          f"{wall / 60:.0f} min)")  # fmt: skip
    print(f"{'task':<11} {'method':<10} {'mean':>6} {'min':>6} {'max':>6}")
    for (env, method), values in sorted(final.items()):
        low, high = min(values), max(values)
        print(f"{env:<11} {method:<10} {_mean(values):>6.2f} {low:>6.2f} {high:>6.2f}")
    print(f"\ntargets (issue 12; {ibrl} is the {args.profile} profile's method):")
    for env, check, value, met in verdicts(final, ibrl):
        print(f"{env:<11} {check:<28} {value:>6.2f}  {'met' if met else 'NOT met'}")
    print(f"\n{out / 'results.csv'}\n{out / 'success.png'}")


if __name__ == "__main__":
    main()
