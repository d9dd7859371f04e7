"""``tandem make-dataset`` (mixed-quality sim episodes) and ``tandem train-offline``
(SRPO, IQL + AWR or BC from logged data; docs/offline.md)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tandem.logs import setup_logging

log = logging.getLogger(__name__)
EXIT_USAGE = 2
# flags of train-offline that map one-to-one onto OfflineSettings fields
SETTING_FLAGS: dict[str, type] = {
    "critic_steps": int, "behavior_steps": int, "policy_steps": int, "batch_size": int,
    "hidden": int, "layers": int, "beta": float, "expectile": float, "reward_scale": float,
    "awr_temperature": float, "policy_lr": float, "behavior_hidden": int, "behavior_blocks": int,
    "behavior_expand": int, "eval_episodes": int, "time_limit": int, "threads": int,
}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    make = sub.add_parser("make-dataset", help="record a mixed-quality dataset in a sim env")
    make.add_argument("--env", required=True, help="sim:lift or sim:drawer")
    make.add_argument(
        "--mix",
        default="expert:10,noisy@0.1:10,noisy@0.3:10,partial:20,failed:20,random:10",
        help="KIND[@STD]:COUNT,... with KIND expert, noisy (@STD needed), partial, failed, "
        "random (docs/offline.md)",
    )
    make.add_argument("--out", type=Path, required=True, help="episode root directory")
    make.add_argument("--seed", type=int, default=0, help="random seed")
    make.add_argument("--time-limit", type=int, default=50, help="episode length limit")
    make.add_argument("--log-level", default="INFO", help="logging level")
    make.set_defaults(func=_make_dataset)

    train = sub.add_parser("train-offline", help="offline RL (srpo, iql, bc) on logged data")
    train.add_argument("--method", choices=["srpo", "iql", "bc"], default="srpo")
    train.add_argument("--data", type=Path, required=True,
                       help="episode directory, robomimic export or D4RL-style .hdf5")  # fmt: skip
    train.add_argument("--env", required=True, help="gym:ID or sim:TASK to evaluate in")
    train.add_argument("--env-kwargs", default=None, metavar="JSON", help="env kwargs")
    train.add_argument("--weighting", choices=["vds", "score"], default=None,
                       help="SRPO score weighting (default vds)")  # fmt: skip
    for name, kind in SETTING_FLAGS.items():
        train.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None,
                           help=f"OfflineSettings.{name}")  # fmt: skip
    train.add_argument("--seed", type=int, default=0, help="random seed")
    train.add_argument("--out", type=Path, required=True,
                       help="run directory (run again with the same --out to resume)")  # fmt: skip
    train.add_argument("--log-level", default="INFO", help="logging level")
    train.set_defaults(func=_train_offline)


def _make_dataset(args: argparse.Namespace) -> int:
    setup_logging("learner", args.log_level, None)
    from learner.envs import EnvSpecError, make_env, parse_env
    from learner.offline.datasets import MixError, make_dataset, parse_mix

    try:
        spec = parse_env(args.env)
        mix = parse_mix(args.mix)
        env = make_env(spec, cameras=(), time_limit=args.time_limit)
        counts = make_dataset(env, spec, mix, args.out, args.seed)
    except (EnvSpecError, MixError) as exc:
        sys.stderr.write(f"tandem make-dataset: {exc}\n")
        return EXIT_USAGE
    for label, (episodes, successes) in counts.items():
        sys.stdout.write(f"{label:>12}: {episodes} episodes, {successes} successful\n")
    sys.stdout.write(f"dataset: {args.out}\n")
    return 0


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    values = {name: getattr(args, name) for name in SETTING_FLAGS}
    values.update(method=args.method, weighting=args.weighting)
    return {k: v for k, v in values.items() if v is not None}


def _train_offline(args: argparse.Namespace) -> int:
    setup_logging("learner", args.log_level, None)
    from pydantic import ValidationError

    from learner.envs import EnvSpecError, parse_env
    from learner.offline.config import OfflineSettings
    from learner.offline.data import DatasetError
    from learner.offline.train import OfflineTrainer

    try:
        cfg = OfflineSettings(**_settings(args))
        spec = parse_env(args.env, args.env_kwargs)
        result = OfflineTrainer(cfg, spec, args.data, args.out, args.seed).run()
    except (EnvSpecError, DatasetError, ValidationError) as exc:
        sys.stderr.write(f"tandem train-offline: {exc}\n")
        return EXIT_USAGE
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.write(f"policy bundle: {args.out / 'policy.safetensors'}\n")
    return 0
