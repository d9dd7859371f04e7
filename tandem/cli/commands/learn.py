"""``tandem record-demos``, ``tandem train`` and ``tandem train-bc``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from tandem.cli.util import add_config_argument
from tandem.logs import setup_logging
from tandem.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)
PROFILE_DIR = Path(__file__).resolve().parents[3] / "learner" / "profiles"
METHODS = ["ibrl", "ibrl_soft", "rl", "rlpd", "bc", "dagger", "hg_dagger"]
DAGGER_METHODS = ("dagger", "hg_dagger")
EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction) -> None:
    rec = sub.add_parser("record-demos", help="record scripted demonstrations of an env")
    _add_env_arguments(rec)
    rec.add_argument("--policy", default="expert",
                     help="MODULE:ATTR (callable obs->action, object with get_action, class, or "
                          "factory, see docs/learner.md) or 'expert' for sim envs")  # fmt: skip
    rec.add_argument(
        "--policy-args",
        default=None,
        metavar="JSON",
        help="arguments (JSON list or object) to build the policy from a factory",
    )
    rec.add_argument("--episodes", type=int, required=True, help="successful episodes to keep")
    rec.add_argument(
        "--max-attempts",
        type=int,
        default=None,
        help="stop after this many episodes (default 10 x --episodes)",
    )
    rec.add_argument("--out", type=Path, required=True, help="episode root directory")
    rec.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    rec.add_argument(
        "--cameras",
        default="all",
        help="comma-separated cameras to record for sim envs, 'all' or 'none'",
    )
    rec.add_argument("--image-size", type=int, default=96, help="image size for sim envs")
    rec.set_defaults(func=_record_demos)

    commands = [
        ("train", "train IL + RL on an environment"),
        ("train-bc", "train the IL policy alone (= train --method bc)"),
    ]
    for name, helptext in commands:
        p = sub.add_parser(name, help=helptext)
        _add_env_arguments(p)
        _add_train_arguments(p, bc_only=name == "train-bc")
        p.set_defaults(func=_train)


def _add_env_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, help="gym:ID or sim:lift / sim:drawer")
    p.add_argument("--env-kwargs", default=None, metavar="JSON", help="env constructor kwargs")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="module to import first (to register gym ids); repeatable")  # fmt: skip
    p.add_argument("--log-level", default="INFO", help="logging level")


def _add_train_arguments(p: argparse.ArgumentParser, bc_only: bool) -> None:
    add_config_argument(p)
    p.add_argument("--profile", default=None,
                   help=f"settings profile from learner/profiles ({_profiles()}); default: "
                        "cpu without CUDA, else pixel (unless --config/TANDEM_CONFIG)")  # fmt: skip
    p.add_argument("--demos", type=Path, required=True, help="episode root with demonstrations")
    if not bc_only:
        p.add_argument("--method", choices=METHODS, default=None, help="algorithm")
        p.add_argument("--steps", type=int, default=None, help="env steps in total (required)")
        p.add_argument(
            "--resume",
            type=Path,
            default=None,
            metavar="RUN_DIR",
            help="continue the run in RUN_DIR (its settings.json is used)",
        )
        p.add_argument("--expert", default=None, metavar="MODULE:ATTR",
                       help="dagger, hg_dagger: the scripted expert that labels states "
                            "(callable obs -> action, object with get_action, class, or task "
                            "factory such as sim:expert_for); --steps is then the budget of "
                            "policy rollout steps")  # fmt: skip
    p.add_argument("--eval-every", type=int, default=None, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation")
    p.add_argument("--bc-steps", type=int, default=None, help="IL pre-training steps")
    p.add_argument("--il-bundle", default=None, metavar="BUNDLE",
                   help="use this tandem train-offline policy as the IL proposal "
                        "(il_kind = srpo) instead of training one on the demos")  # fmt: skip
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="device")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--logger", choices=["none", "tensorboard", "wandb"], default=None,
                   help="also send scalars to TensorBoard (RUN_DIR/tensorboard) or W&B "
                        "(offline unless WANDB_MODE is set)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<time>)")


def _profiles() -> str:
    return ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))


def _record_demos(args: argparse.Namespace) -> int:
    setup_logging("learner", args.log_level, None)
    from learner.demos import DemoError, record_episode, resolve_policy, write_demo
    from learner.envs import EnvSpecError, make_env, parse_env

    try:
        spec = parse_env(args.env, args.env_kwargs, args.imports)
        cams = None if args.cameras == "all" else () if args.cameras == "none" else tuple(
            c for c in args.cameras.split(",") if c
        )  # fmt: skip
        env = make_env(spec, cameras=cams, image_size=args.image_size)
        policy_args = json.loads(args.policy_args) if args.policy_args else None
        policy = resolve_policy(args.policy, spec, policy_args)
    except (EnvSpecError, DemoError, json.JSONDecodeError) as exc:
        sys.stderr.write(f"tandem record-demos: {exc}\n")
        return EXIT_USAGE
    kept, attempts = 0, 0
    limit = args.max_attempts or 10 * args.episodes
    while kept < args.episodes and attempts < limit:
        steps, final, summary = record_episode(env, policy, seed=args.seed + attempts)
        attempts += 1
        if summary["success"]:
            path = write_demo(args.out, env, spec, steps, final_obs=final, summary=summary,
                              policy_name=args.policy)  # fmt: skip
            kept += 1
            log.info("kept %s (%d steps)", path, len(steps))
    sys.stdout.write(f"recorded {kept} successful episodes of {attempts} into {args.out}\n")
    return 0 if kept == args.episodes else 1


def _resolve_settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "resume", None) is not None:
        saved = json.loads((args.resume / "settings.json").read_text())
        return load_settings(None, **{k: v for k, v in saved.items() if k == "learner"})
    overrides = {
        "method": "bc" if not hasattr(args, "method") else args.method,
        "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
        "bc_steps": args.bc_steps, "device": args.device, "logger": args.logger,
        "il_bundle": args.il_bundle, "il_kind": "srpo" if args.il_bundle else None,
    }  # fmt: skip
    learner = {k: v for k, v in overrides.items() if v is not None}
    return load_settings(profile_config(args, cpu_profile="cpu"), learner=learner)


def profile_config(args: argparse.Namespace, *, cpu_profile: str) -> Path | None:
    """The settings file of ``--config`` or ``--profile``; with neither (and no
    TANDEM_CONFIG) the ``pixel`` profile with CUDA, else ``cpu_profile``. Sets
    ``args.profile`` to the profile chosen."""
    config = args.config
    if args.profile is not None and config is not None:
        raise SettingsError("give either --profile or --config, not both")
    if config is None and args.profile is None and not os.environ.get("TANDEM_CONFIG"):
        import torch

        args.profile = "pixel" if torch.cuda.is_available() else cpu_profile
    if args.profile is not None:
        config = PROFILE_DIR / f"{args.profile}.toml"
        if not config.is_file():
            raise SettingsError(f"unknown profile {args.profile!r}; available: {_profiles()}")
    return config


def _train(args: argparse.Namespace) -> int:
    setup_logging("learner", args.log_level, None)
    from learner.acting import BundleError
    from learner.dagger import DAggerTrainer, ExpertError, load_expert
    from learner.demos import DemoError
    from learner.envs import EnvSpecError, parse_env
    from learner.loggers import LoggerError
    from learner.train import TrainArgs, Trainer

    resume = getattr(args, "resume", None)
    settings = _resolve_settings(args)
    steps = getattr(args, "steps", None)
    if settings.learner.method != "bc" and steps is None:
        sys.stderr.write("tandem train: --steps is required\n")
        return EXIT_USAGE
    problem = _dagger_usage(settings.learner, getattr(args, "expert", None), resume)
    if problem:
        sys.stderr.write(f"tandem train: {problem}\n")
        return EXIT_USAGE
    out = resume or args.out or Path("runs") / _stamp()
    try:
        spec = parse_env(args.env, args.env_kwargs, args.imports)
        train_args = TrainArgs(spec, args.demos, steps or 0, out, args.seed, resume is not None)
        if settings.learner.method in DAGGER_METHODS:
            expert = load_expert(args.expert, spec)  # before the run directory is made
            rows = DAggerTrainer(settings, train_args, expert, args.expert).run()
        else:
            rows = Trainer(settings, train_args).run()
    except (EnvSpecError, DemoError, LoggerError, ExpertError, BundleError) as exc:
        sys.stderr.write(f"tandem train: {exc}\n")
        return EXIT_USAGE
    _report(rows, out)
    return 0


def _dagger_usage(cfg: Any, expert: str | None, resume: Path | None) -> str | None:
    """What is wrong with --expert / --resume / --il-bundle for the method, or None."""
    method = cfg.method
    if method in DAGGER_METHODS and cfg.il_kind == "srpo":
        return f"--method {method} trains its own IL policy; it cannot take --il-bundle"
    if method in DAGGER_METHODS and not expert:
        return f"--method {method} needs --expert MODULE:ATTR (e.g. sim:expert_for)"
    if method not in DAGGER_METHODS and expert:
        return f"--expert is used by --method dagger or hg_dagger only, not {method}"
    if method in DAGGER_METHODS and resume is not None:
        return f"--method {method} cannot --resume; start a new run"
    return None


def _report(rows: list[dict[str, Any]], out: Path) -> None:
    for row in rows:
        sys.stdout.write(f"env_step {row['env_step']:>8}  success {row['success_rate']:.2f}  "
                         f"return {row['mean_return']:.2f}\n")  # fmt: skip
    sys.stdout.write(f"run directory: {out}\n")


def _stamp() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S")
