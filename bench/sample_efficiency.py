"""Success rate vs env steps of ibrl, rlpd and bc on sim:lift (state obs) with scripted demos.

    python bench/sample_efficiency.py --steps 20000 --demos 10 --out runs/sample_eff

Records ``--demos`` expert demonstrations (state only), then runs ``tandem train`` for each
method with the ``cpu`` profile (or ``--profile``) and prints one table of eval.csv rows
(with ``--json``: one JSON object per row). Progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TANDEM = [sys.executable, "-m", "tandem"]


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    pipe = subprocess.PIPE
    res = subprocess.run(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=pipe, text=True, check=False
    )
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-4000:])
        raise SystemExit(f"command failed with exit status {res.returncode}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", default="sim:lift")
    p.add_argument("--steps", type=int, default=20_000, help="env step budget per method")
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--methods", default="ibrl,rlpd,bc")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--bc-steps", type=int, default=None, help="IL pre-training steps (profile's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("runs/sample_efficiency"))
    p.add_argument("--json", action="store_true", help="print one JSON line per eval row")
    args = p.parse_args()
    out = args.out.resolve()
    demos = out / "demos"
    if not demos.exists():
        run([*TANDEM, "record-demos", "--env", args.env, "--episodes", str(args.demos),
             "--out", str(demos), "--cameras", "none", "--seed", "1000"])  # fmt: skip
    results = {
        method: train(args, method, demos, out / method) for method in args.methods.split(",")
    }
    if args.json:
        for method, rows in results.items():
            for row in rows:
                print(json.dumps(eval_record(method, row)))
    else:
        print_table(args, results)


def train(
    args: argparse.Namespace, method: str, demos: Path, run_dir: Path
) -> list[dict[str, str]]:
    """Run ``tandem train`` for one method; its eval.csv rows."""
    bc_steps = [] if args.bc_steps is None else ["--bc-steps", str(args.bc_steps)]
    t0 = time.monotonic()
    run([*TANDEM, "train", "--env", args.env, "--demos", str(demos), "--method", method,
         "--steps", str(args.steps), "--profile", args.profile, "--out", str(run_dir),
         "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
         "--seed", str(args.seed), "--device", args.device, *bc_steps,
         "--log-level", "WARNING"])  # fmt: skip
    print(f"{method}: {time.monotonic() - t0:.0f} s wall", file=sys.stderr, flush=True)
    with open(run_dir / "eval.csv") as f:
        return list(csv.DictReader(f))


def eval_record(method: str, row: dict[str, str]) -> dict[str, object]:
    """One eval.csv row as a JSON-ready record."""
    return {
        "method": method,
        "env_step": int(row["env_step"]),
        "success_rate": float(row["success_rate"]),
        "mean_return": float(row["mean_return"]),
        "bc_selected_frac": float(row["bc_selected_frac"]),
        "wall_s": float(row["wall_s"]),
    }


def print_table(args: argparse.Namespace, results: dict[str, list[dict[str, str]]]) -> None:
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
