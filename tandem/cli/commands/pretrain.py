"""``tandem pretrain``: reward-free Proto-RL exploration that pre-trains the pixel encoder."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tandem.cli.commands.learn import profile_config
from tandem.cli.util import add_config_argument
from tandem.logs import setup_logging
from tandem.settings import Settings, load_settings

log = logging.getLogger(__name__)
EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="reward-free Proto-RL exploration: pre-train the pixel encoder (encoder_init)",
        description="Explore an env on the Proto-RL intrinsic reward alone (TD3 backbone, no "
        "IL) while training the prototype representation. Writes OUT/encoder.pt (use it as "
        "learner.encoder_init), OUT/explorer.safetensors (the explorer as a policy bundle: "
        "tandem bridge --policy play), OUT/episodes (the exploration replay as an episode "
        "store), OUT/metrics.jsonl, OUT/coverage.json and OUT/settings.json.",
    )
    p.add_argument("--env", required=True, help="sim:lift / sim:drawer / sim:detour or gym:ID "
                   "with camera images")  # fmt: skip
    p.add_argument("--env-kwargs", default=None, metavar="JSON", help="env constructor kwargs")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="module to import first (to register gym ids); repeatable")  # fmt: skip
    p.add_argument("--steps", type=int, required=True, help="env steps of exploration")
    p.add_argument("--out", type=Path, default=None, help="output directory "
                   "(default runs/pretrain-<time>)")  # fmt: skip
    add_config_argument(p)
    p.add_argument("--profile", default=None, help="settings profile from learner/profiles; "
                   "default: proto_cpu without CUDA, else pixel (unless --config or "
                   "TANDEM_CONFIG)")  # fmt: skip
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="device")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--log-level", default="INFO", help="logging level")
    p.set_defaults(func=_pretrain)


def _settings(args: argparse.Namespace) -> Settings:
    learner = {"device": args.device} if args.device else {}
    return load_settings(profile_config(args, cpu_profile="proto_cpu"), learner=learner)


def _pretrain(args: argparse.Namespace) -> int:
    setup_logging("learner", args.log_level, None)
    from learner.envs import EnvSpecError, parse_env
    from learner.pretrain import Explorer, PretrainArgs

    if args.steps < 1:
        sys.stderr.write(f"tandem pretrain: --steps must be >= 1, got {args.steps}\n")
        return EXIT_USAGE
    settings = _settings(args)
    out = args.out or Path("runs") / time.strftime("pretrain-%Y%m%d-%H%M%S")
    try:
        spec = parse_env(args.env, args.env_kwargs, args.imports)
        result = Explorer(settings, PretrainArgs(spec, args.steps, out, args.seed)).run()
    except (EnvSpecError, ValueError) as exc:
        sys.stderr.write(f"tandem pretrain: {exc}\n")
        return EXIT_USAGE
    for key, value in result.items():
        sys.stdout.write(f"{key:>18}  {value:g}\n")
    sys.stdout.write(f"encoder: {out / 'encoder.pt'} (learner.encoder_init)\n")
    sys.stdout.write(f"exploration episodes: {out / 'episodes'}\n")
    sys.stdout.write(f"explorer: {out / 'explorer.safetensors'} (tandem bridge --policy play)\n")
    return 0
