"""Does a Proto-RL pre-trained encoder help pixel IBRL? Learning curves with and without it.

    MUJOCO_GL=egl python scripts/proto_downstream.py --encoder RUN/encoder.pt --demos DEMOS \\
        --seeds 0,1,2 --steps 2000 --out runs/proto_downstream --png docs/proto_pretraining.png

Runs ``tandem train --method ibrl`` on pixels (``--profile``, default ``proto_cpu``) once per
seed from scratch and once with ``learner.encoder_init = --encoder`` (``--mode`` frozen or
finetune), everything else equal (demos, IL steps, seeds), then draws the success curves
(``learner.plot``, mean over seeds with the min-max band) and prints, per variant, the mean
success at each evaluation and the first env step where the mean reaches ``--level``.
Runs already complete in ``--out`` are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learner.plot import curve, plot_success, read_run  # noqa: E402

VARIANTS = ("from scratch", "proto encoder")


def train(args: argparse.Namespace, variant: str, seed: int) -> Path:
    out = args.out / variant.replace(" ", "_") / f"seed{seed}"
    if (out / "policy.safetensors").exists():
        return out
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
           "TANDEM_LEARNER__BC_RESNET_WIDTH": str(args.bc_width)}  # fmt: skip
    if variant == "proto encoder":
        env["TANDEM_LEARNER__ENCODER_INIT"] = str(args.encoder.resolve())
        env["TANDEM_LEARNER__ENCODER_INIT_MODE"] = args.mode
    cmd = [sys.executable, "-m", "tandem", "train", "--env", args.env, "--demos", str(args.demos),
           "--method", "ibrl", "--steps", str(args.steps), "--profile", args.profile,
           "--seed", str(seed), "--out", str(out), "--eval-every", str(args.eval_every),
           "--eval-episodes", str(args.eval_episodes), "--bc-steps", str(args.bc_steps),
           "--device", "cpu", "--log-level", "WARNING"]  # fmt: skip
    sys.stderr.write(f"$ {' '.join(cmd)}\n")
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"seed{seed}.log", "w") as log:
        res = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, check=False)
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): see {out.parent / f'seed{seed}.log'}")
    return out


def first_reaching(steps: list[int], means: list[float], level: float) -> int | None:
    return next((s for s, m in zip(steps, means, strict=True) if m >= level), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", type=Path, required=True, help="tandem pretrain encoder.pt")
    p.add_argument("--demos", type=Path, required=True, help="demos with camera images")
    p.add_argument("--env", default="sim:lift")
    p.add_argument("--profile", default="proto_cpu")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=400)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--bc-steps", type=int, default=400)
    p.add_argument("--bc-width", type=int, default=4, help="IL ResNet first-stage width")
    p.add_argument("--mode", choices=["frozen", "finetune"], default="frozen")
    p.add_argument("--level", type=float, default=0.5, help="success level to reach")
    p.add_argument("--jobs", type=int, default=1, help="training runs at a time")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--png", type=Path, required=True)
    args = p.parse_args()
    jobs = [(v, int(s)) for s in args.seeds.split(",") for v in VARIANTS]
    with ThreadPoolExecutor(args.jobs) as pool:  # each job is a tandem train process
        runs = list(pool.map(lambda job: (job[0], train(args, *job)), jobs))
    rows: list[dict[str, Any]] = []
    for variant, run in runs:
        rows += [{**r, "method": f"ibrl, {variant}"} for r in read_run(run)]
    title = f"pixel IBRL, {args.profile}: Proto-RL encoder ({args.mode}) vs scratch"
    plot_success(args.png, rows, title)
    for variant in VARIANTS:
        steps, means, _, _ = curve([r for r in rows if r["method"] == f"ibrl, {variant}"])
        reached = first_reaching(steps, means, args.level)
        record = {"variant": variant, "steps": steps, "mean_success": means,
                  f"first_step_at_{args.level:g}": reached}  # fmt: skip
        sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.write(f"plot: {args.png}\n")


if __name__ == "__main__":
    main()
