"""Reward-free exploration coverage in sim: Proto-RL (``tandem pretrain``) vs uniformly random
actions, the same number of env steps.

Usage: MUJOCO_GL=egl python bench/exploration.py [--env sim:lift] [--steps 10000]
       [--seeds 0] [--profile proto_cpu] [--quick] [--json]

For each seed, runs ``learner.pretrain.Explorer`` twice on the same env seeds: once with
uniformly random actions in [-1, 1] throughout (nothing learnt), once with Proto-RL (random
warm-up episodes, then the TD3 actor on the kNN intrinsic reward while the prototype
representation trains). Reports, from the visited sim states (``learner.proto.coverage``):

* end-effector voxels: distinct 2 cm cells of the grip-site position (issue 16 target: Proto-RL
  >= 2x random);
* object-displacement coverage: distinct 2 cm cells of the object's displacement from where
  its episode started, the fraction of episodes that moved it, and the largest displacement.

Sizes come from ``--profile`` (default ``proto_cpu``: 48 px images of both cameras, a 32-d ViT,
128 prototypes, batch 64, episodes of 50 steps); the first output line states them.
``--quick`` is a smoke mode (a few seconds, tiny sizes; the figures mean nothing).

With ``--json`` each line is one JSON object: one per (method, seed) with the coverage
figures, then ``{"summary": true, ...}`` with the means and the Proto-RL / random ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import numpy as np

from learner.envs import parse_env
from learner.pretrain import Explorer, PretrainArgs
from tandem.cli.commands.learn import PROFILE_DIR
from tandem.settings import Settings, load_settings

TARGET_RATIO = 2.0
FIGURES = ("ee_voxels", "object_cells", "object_moved_frac", "object_max_disp_m")
QUICK = {
    "image_size": 32, "vit_dim": 8, "vit_heads": 2, "hidden_dim": 32, "spatial_emb": 16,
    "actor_compress": 8, "batch_size": 16, "min_buffer": 16, "warmup_episodes": 1,
    "proto_prototypes": 8, "proto_latent_dim": 8, "proto_pred_hidden": 16, "time_limit": 20,
}  # fmt: skip
SIZES = ("image_size", "cameras", "vit_dim", "vit_depth", "hidden_dim", "batch_size",
         "proto_prototypes", "proto_latent_dim", "proto_knn_k", "time_limit", "update_freq",
         "warmup_episodes")  # fmt: skip


def settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"device": "cpu", "threads": 1, "log_every": 10**9}
    if args.quick:
        overrides.update(QUICK)
    return load_settings(PROFILE_DIR / f"{args.profile}.toml", learner=overrides)


def explore(
    cfg: Settings, env: str, steps: int, seed: int, *, random: bool, out: Path | None
) -> dict[str, float]:
    run = PretrainArgs(parse_env(env), steps, out, seed, random_actions=random)
    return Explorer(cfg, run).run()


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": True, "seeds": len({r["seed"] for r in rows})}
    for method in ("random", "proto"):
        for key in (*FIGURES, "wall_s"):
            out[f"{method}_{key}"] = float(np.mean([r[key] for r in rows if r["method"] == method]))
    out["voxel_ratio"] = out["proto_ee_voxels"] / out["random_ee_voxels"]
    out["object_cells_ratio"] = out["proto_object_cells"] / out["random_object_cells"]
    # at most one new voxel per step: the largest ratio any explorer could reach here
    out["ceiling_ratio"] = float(np.mean([r["steps"] for r in rows])) / out["random_ee_voxels"]
    out["target_ratio"] = TARGET_RATIO
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="sim:lift", help="sim task")
    parser.add_argument("--steps", type=int, default=10_000, help="env steps per method")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--profile", default="proto_cpu", help="settings profile")
    parser.add_argument("--quick", action="store_true", help="smoke mode: 200 steps, tiny nets")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep each Proto-RL run's tandem pretrain outputs (encoder.pt, "
                             "episodes, ...) in OUT/proto-seedN")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    steps = 200 if args.quick else args.steps
    cfg = settings(args)
    if not args.json:
        sizes = ", ".join(f"{k}={getattr(cfg.learner, k)}" for k in SIZES)
        print(f"{args.env}, {steps} env steps per method; {sizes}")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for method in ("random", "proto"):
            random = method == "random"
            out = None if random or args.out is None else args.out / f"proto-seed{seed}"
            result = explore(cfg, args.env, steps, seed, random=random, out=out)
            row = {"method": method, "seed": seed, "env": args.env, **result}
            rows.append(row)
            print(json.dumps(row) if args.json else _line(row))
    total = summary(rows)
    print(json.dumps(total) if args.json else _summary_text(total))


def _line(row: dict[str, Any]) -> str:
    return (f"{row['method']:>6} seed {row['seed']}: ee voxels {row['ee_voxels']:.0f}, object "
            f"cells {row['object_cells']:.0f}, object moved in {row['object_moved_frac']:.0%} "
            f"of episodes (max {row['object_max_disp_m']:.3f} m), "
            f"{row['wall_s']:.0f} s")  # fmt: skip


def _summary_text(s: dict[str, Any]) -> str:
    met = "met" if s["voxel_ratio"] >= TARGET_RATIO else "NOT met"
    return (f"Proto-RL / random: ee voxels x{s['voxel_ratio']:.2f} (target >= "
            f"{TARGET_RATIO:g}: {met}; one new voxel per step would give "
            f"x{s['ceiling_ratio']:.2f}), object cells x{s['object_cells_ratio']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
