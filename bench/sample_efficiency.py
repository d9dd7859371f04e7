"""Success rate vs env steps of ibrl, rlpd and bc on sim:lift (state obs) with scripted demos.

    python bench/sample_efficiency.py --steps 20000 --demos 10 --out runs/sample_eff

Records ``--demos`` expert demonstrations (state only), then runs ``tandem train`` for each
method with the ``cpu`` profile (or ``--profile``) and prints one table of eval.csv rows.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", default="sim:lift")
    p.add_argument("--steps", type=int, default=20_000, help="env step budget per method")
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--methods", default="ibrl,rlpd,bc")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("runs/sample_efficiency"))
    args = p.parse_args()
    out = args.out.resolve()
    demos = out / "demos"
    tandem = [sys.executable, "-m", "tandem"]
    if not demos.exists():
        run([*tandem, "record-demos", "--env", args.env, "--episodes", str(args.demos),
             "--out", str(demos), "--cameras", "none", "--seed", "1000"])  # fmt: skip
    results: dict[str, list[dict[str, str]]] = {}
    for method in args.methods.split(","):
        run_dir = out / method
        t0 = time.monotonic()
        run([*tandem, "train", "--env", args.env, "--demos", str(demos), "--method", method,
             "--steps", str(args.steps), "--profile", args.profile, "--out", str(run_dir),
             "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
             "--seed", str(args.seed), "--device", args.device,
             "--log-level", "WARNING"])  # fmt: skip
        print(f"{method}: {time.monotonic() - t0:.0f} s wall", flush=True)
        with open(run_dir / "eval.csv") as f:
            results[method] = list(csv.DictReader(f))
    print(f"\n{args.env}, {args.demos} demos, profile {args.profile}, "
          f"{args.eval_episodes} eval episodes per point, seed {args.seed}")  # fmt: skip
    print(f"{'method':<8} {'env_step':>9} {'success':>8} {'return':>8} {'IL chosen':>9}")
    for method, rows in results.items():
        for row in rows:
            step, success = int(row["env_step"]), float(row["success_rate"])
            ret, il = float(row["mean_return"]), float(row["bc_selected_frac"])
            print(f"{method:<8} {step:>9} {success:>8.2f} {ret:>8.2f} {il:>9.2f}")


if __name__ == "__main__":
    main()
