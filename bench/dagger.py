"""Success against the number of expert labels: BC, DAgger and HG-DAgger on a sim task.

    python bench/dagger.py --png docs/dagger.png          # sim:lift, 3 seeds
    python bench/dagger.py --seeds 0 --bc-demos 1,4 --dagger-steps 100 --out runs/dg

* BC: ``tandem train --method bc`` on the first k scripted demos for every k of
  ``--bc-demos`` (nested sets); its expert labels are the demo transitions.
* DAgger and HG-DAgger: ``tandem train --method dagger|hg_dagger --expert sim:expert_for``
  from the first ``--start-demos`` demos, ``--episodes-per-round`` rollouts per round, until
  ``--dagger-steps`` (``--hg-steps``) rollout steps; every round's policy is evaluated.
  DAgger's expert labels every visited state; HG-DAgger's expert takes over when its action
  and the policy's differ by more than the profile's ``hg_dagger_threshold`` for
  ``hg_dagger_patience`` steps in a row (or the hand stalls), and only the correction
  segment is labelled. Demos count as labels for all of them.
* ``dagger_beta``: DAgger whose rollouts execute the expert's action with probability
  ``--beta`` at each step of round 1, halved every round (``dagger_beta``,
  ``dagger_beta_decay`` = 0.5); every visited state is still labelled.

Every run uses the ``--profile`` (cpu: 2x256 MLP, 2000 BC steps from scratch per fit, episodes
of at most 50 steps), one torch thread and the same ``--eval-episodes`` evaluation seeds.
``--jobs`` runs at a time; a run already finished in ``--out`` is reused.

Writes ``results.csv`` (method, seed, expert_labels, success_rate, round) into ``--out`` and
the plot (``--png``, default ``OUT/dagger.png``): success against expert labels, one thin line
per seed and the mean over seeds (a seed's success at x labels is that of its last policy
trained on at most x labels; the mean is drawn where every seed has a point). Prints a table:
each method's mean success at the common label budget (the largest label count that every
method reached in every seed) and at its last point; with ``--json``, one JSON object per
method.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TANDEM_METHOD = {"dagger_beta": "dagger"}
TANDEM = [sys.executable, "-m", "tandem"]
FIELDS = ["method", "seed", "demos", "round", "expert_labels", "success_rate", "env_step"]
Point = tuple[int, float]  # (expert labels, success rate)


@dataclass(frozen=True)
class Run:
    method: str  # bc, dagger, dagger_beta (dagger with --beta) or hg_dagger
    seed: int
    demos: int

    def slug(self) -> str:
        tail = f"demos{self.demos}" if self.method == "bc" else "run"
        return f"{self.method}/seed{self.seed}/{tail}"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", default="sim:lift")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--bc-demos", default="1,2,4,8,16,32", help="demo counts of the BC runs")
    p.add_argument("--start-demos", type=int, default=2, help="demos DAgger starts from")
    p.add_argument("--dagger-steps", type=int, default=600, help="rollout steps, DAgger")
    p.add_argument("--hg-steps", type=int, default=300, help="rollout steps, HG-DAgger")
    p.add_argument("--episodes-per-round", type=int, default=3)
    p.add_argument("--methods", default="bc,dagger,dagger_beta,hg_dagger",
                   help="dagger_beta: dagger with --beta")  # fmt: skip
    p.add_argument("--beta", type=float, default=0.5, help="dagger_beta's round-1 beta")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--bc-steps", type=int, default=None, help="BC steps per fit (profile's)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--jobs", type=int, default=2, help="training runs at a time")
    p.add_argument("--out", type=Path, default=Path("runs/dagger"))
    p.add_argument("--png", type=Path, default=None, help="plot path (default OUT/dagger.png)")
    p.add_argument("--json", action="store_true", help="print one JSON line per method")
    return p.parse_args()


def run(cmd: list[str], log: Path | None = None, env: dict[str, str] | None = None) -> None:
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    full = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
            "OMP_NUM_THREADS": "1", **(env or {})}  # fmt: skip
    with open(log or os.devnull, "w") as err:
        res = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=full,
                             check=False)  # fmt: skip
    if res.returncode != 0:
        tail = log.read_text()[-4000:] if log else ""
        raise SystemExit(f"{tail}\ncommand failed with exit status {res.returncode}: {cmd}")


def record_demos(args: argparse.Namespace, count: int) -> Path:
    """The first ``count`` scripted demos (seeds 1000...: the sets are nested)."""
    path = args.out / "demos" / f"n{count}"
    if not path.exists():
        run([*TANDEM, "record-demos", "--env", args.env, "--episodes", str(count),
             "--out", str(path), "--cameras", "none", "--seed", "1000"])  # fmt: skip
    return path


def demo_labels(path: Path, env: str) -> int:
    """Demo transitions (one expert label each)."""
    sys.path.insert(0, str(ROOT))
    from learner.demos import load_demos
    from learner.envs import make_env, parse_env

    probe = make_env(parse_env(env), cameras=())
    dim = probe.action_dim
    probe.close()
    return sum(len(d) for d in load_demos(path, action_dim=dim))


def budget(args: argparse.Namespace, r: Run) -> int:
    """Rollout steps of a run (0 for BC)."""
    steps = {"dagger": args.dagger_steps, "dagger_beta": args.dagger_steps}
    return {**steps, "hg_dagger": args.hg_steps}.get(r.method, 0)


def finished(run_dir: Path, log_file: str, steps: int) -> bool:
    """The run wrote its bundle and its log reached ``steps`` rollout steps."""
    if not (run_dir / "policy.safetensors").exists() or not (run_dir / log_file).exists():
        return False
    with open(run_dir / log_file) as f:
        rows = list(csv.DictReader(f))
    return bool(rows) and int(rows[-1]["env_step"]) >= steps


def train(args: argparse.Namespace, r: Run) -> list[dict[str, Any]]:
    """Run one (method, seed, demos) unless finished; its points as result rows."""
    run_dir = args.out / r.slug()
    log_file = "eval.csv" if r.method == "bc" else "dagger.csv"
    if not finished(run_dir, log_file, budget(args, r)):
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        cmd = [*TANDEM, "train", "--env", args.env, "--demos", str(record_demos(args, r.demos)),
               "--method", TANDEM_METHOD.get(r.method, r.method), "--profile", args.profile,
               "--out", str(run_dir),
               "--eval-episodes", str(args.eval_episodes), "--seed", str(r.seed),
               "--device", "cpu", "--log-level", "WARNING"]  # fmt: skip
        if r.method != "bc":
            cmd += ["--expert", "sim:expert_for", "--steps", str(budget(args, r))]
        if args.bc_steps is not None:
            cmd += ["--bc-steps", str(args.bc_steps)]
        env = {"TANDEM_LEARNER__DAGGER_EPISODES": str(args.episodes_per_round)}
        if r.method == "dagger_beta":
            env["TANDEM_LEARNER__DAGGER_BETA"] = str(args.beta)
        t0 = time.monotonic()
        run(cmd, run_dir.parent / f"{run_dir.name}.log", env)
        print(f"{r.slug()}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    with open(run_dir / log_file) as f:
        rows = list(csv.DictReader(f))
    base = {"method": r.method, "seed": r.seed, "demos": r.demos}
    if r.method == "bc":
        labels = demo_labels(record_demos(args, r.demos), args.env)
        return [{**base, "round": 0, "expert_labels": labels, "env_step": 0,
                 "success_rate": float(rows[-1]["success_rate"])}]  # fmt: skip
    return [{**base, "round": int(row["round"]), "expert_labels": int(row["expert_labels"]),
             "env_step": int(row["env_step"]), "success_rate": float(row["success_rate"])}
            for row in rows]  # fmt: skip


def curves(rows: list[dict[str, Any]]) -> dict[str, dict[int, list[Point]]]:
    """method -> seed -> (labels, success) points in the order of the label counts."""
    out: dict[str, dict[int, list[Point]]] = {}
    for row in rows:
        seeds = out.setdefault(row["method"], {})
        seeds.setdefault(row["seed"], []).append((row["expert_labels"], row["success_rate"]))
    # by label count; rounds that added no label keep their order (the last is the newest)
    return {m: {s: sorted(p, key=lambda x: x[0]) for s, p in seeds.items()}
            for m, seeds in out.items()}  # fmt: skip


def at(points: list[Point], labels: int) -> float | None:
    """Success of the last policy trained on at most ``labels`` labels (None: none yet)."""
    before = [s for n, s in points if n <= labels]
    return before[-1] if before else None


def mean_curve(per_seed: dict[int, list[Point]]) -> list[tuple[int, float]]:
    """The mean over seeds at every label count where every seed has a policy."""
    start = max(p[0][0] for p in per_seed.values())
    stop = min(p[-1][0] for p in per_seed.values())
    xs = sorted({n for p in per_seed.values() for n, _ in p if start <= n <= stop})
    means = []
    for x in xs:
        values = [at(p, x) for p in per_seed.values()]
        means.append((x, sum(v for v in values if v is not None) / len(values)))
    return means


def common_budget(data: dict[str, dict[int, list[Point]]]) -> int:
    """The largest label count that every method reached in every seed."""
    return min(p[-1][0] for seeds in data.values() for p in seeds.values())


def plot(path: Path, data: dict[str, dict[int, list[Point]]], title: str, beta: float) -> None:
    sys.path.insert(0, str(ROOT))
    from learner.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    names = {"bc": "BC (more demos)", "dagger": "DAgger", "hg_dagger": "HG-DAgger",
             "dagger_beta": f"DAgger, beta {beta:g} (x0.5 per round)"}  # fmt: skip
    for method in ("bc", "dagger", "dagger_beta", "hg_dagger"):
        if method not in data:
            continue
        per_seed = data[method]
        mean = mean_curve(per_seed)
        label = f"{names[method]}, mean of {len(per_seed)} seed{'s' * (len(per_seed) > 1)}"
        line = ax.plot([x for x, _ in mean], [y for _, y in mean], marker="o", markersize=4,
                       linewidth=2, label=label, drawstyle="default")[0]  # fmt: skip
        for points in per_seed.values():
            ax.plot([n for n, _ in points], [s for _, s in points], color=line.get_color(),
                    alpha=0.25, linewidth=1, marker=".", markersize=3)  # fmt: skip
    ax.set(xlabel="expert labels (demo transitions + labelled states)", ylabel="success rate",
           ylim=(-0.03, 1.03), title=title)  # fmt: skip
    ax.set_xscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(data: dict[str, dict[int, list[Point]]]) -> list[dict[str, Any]]:
    budget = common_budget(data)
    out = []
    for method, per_seed in sorted(data.items()):
        at_budget = [at(p, budget) for p in per_seed.values()]
        last = [p[-1] for p in per_seed.values()]
        out.append({
            "env": "", "method": method, "seeds": len(per_seed), "common_labels": budget,
            "success_at_common": sum(v or 0.0 for v in at_budget) / len(at_budget),
            "final_labels": sum(n for n, _ in last) / len(last),
            "final_success": sum(s for _, s in last) / len(last),
        })  # fmt: skip
    return out


def main() -> None:
    args = parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    counts = sorted({*(int(c) for c in args.bc_demos.split(",")), args.start_demos})
    for count in counts:  # before the pool: runs of one count share the directory
        record_demos(args, count)
    methods = [m for m in args.methods.split(",") if m != "bc"]
    runs = [Run(m, s, args.start_demos) for m in methods for s in seeds]
    if "bc" in args.methods.split(","):
        runs += [Run("bc", s, c) for c in counts if c in _bc_counts(args) for s in seeds]
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = [row for rs in pool.map(lambda r: train(args, r), runs) for row in rs]
    with open(args.out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    data = curves(rows)
    png = args.png or args.out / "dagger.png"
    title = (f"{args.env}, {args.profile} profile, {args.eval_episodes} eval episodes per point;"
             f" DAgger from {args.start_demos} demos")  # fmt: skip
    plot(png, data, title, args.beta)
    report(args, summary(data), time.monotonic() - t0, png)


def _bc_counts(args: argparse.Namespace) -> set[int]:
    return {int(c) for c in args.bc_demos.split(",")}


def report(args: argparse.Namespace, rows: list[dict[str, Any]], wall: float, png: Path) -> None:
    if args.json:
        for row in rows:
            print(json.dumps({**row, "env": args.env}))
        return
    budget = rows[0]["common_labels"]
    print(f"\n{args.env}: success against expert labels ({args.seeds} seeds, "
          f"{args.eval_episodes} eval episodes; {wall / 60:.0f} min)")  # fmt: skip
    print(f"{'method':<12} {'at ' + str(budget) + ' labels':>14} {'last labels':>12} "
          f"{'last success':>13}")  # fmt: skip
    for r in rows:
        print(f"{r['method']:<12} {r['success_at_common']:>14.2f} {r['final_labels']:>12.0f} "
              f"{r['final_success']:>13.2f}")  # fmt: skip
    print(f"\n{args.out / 'results.csv'}\n{png}")


if __name__ == "__main__":
    main()
