"""``tandem demo-operator``: a scripted operator that drives a sim robot through the dashboard's
protocol (demos, rollouts, take-overs, resets, labels), to watch the whole loop without a pad."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
from dataclasses import asdict
from pathlib import Path

from tandem.cli.util import add_config_argument, settings_from_args
from tandem.credentials import (
    SCRIPTED_OPERATOR,
    credentials_file,
    read_credentials,
    read_session,
    session_file,
    write_private,
)
from tandem.logs import setup_logging
from tandem.messages.commands import MAX_EVAL_EPISODES
from tandem.settings import Settings

log = logging.getLogger(__name__)

OPERATOR_NAME = SCRIPTED_OPERATOR
EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo-operator",
        help="drive a sim robot like an operator at the dashboard: demos, rollouts, take-overs",
        description="A scripted operator: logs in, claims the robot over /ws/control with an "
        "emulated gamepad whose hands are the sim task's expert, records demonstrations, runs "
        "rollouts, takes over when the policy stalls, signals resets and labels failures. "
        "Watch it on the dashboard.",
    )
    add_config_argument(p)
    p.add_argument("--url", help="server URL (default: http://127.0.0.1:<server.port>)")
    p.add_argument("--robot", help="robot id (default: the server's first robot)")
    p.add_argument("--demos", type=_count, default=5, help="demonstrations to record (5)")
    p.add_argument("--rollouts", type=_count, default=3, help="rollouts after the demos (3)")
    p.add_argument(
        "--eval-every", type=_count, default=0, metavar="K",
        help="run an evaluation batch after every K rollouts (0: never; default 0)",
    )  # fmt: skip
    p.add_argument(
        "--eval-episodes", type=_eval_size, default=10, metavar="N",
        help="episodes per evaluation batch: the policy alone, deterministic (10)",
    )  # fmt: skip
    p.add_argument(
        "--take-over-after", type=_positive, default=60, metavar="STEPS",
        help="take over a rollout that has not succeeded after this many steps (60)",
    )  # fmt: skip
    p.add_argument(
        "--stall-steps", type=_positive, default=15, metavar="STEPS",
        help="take over when the hand moved less than 1 cm in this many steps (15)",
    )  # fmt: skip
    p.add_argument(
        "--take-over-unsure", type=_threshold, default=None, metavar="U",
        help="also take over when the mean of the policy's last --unsure-window uncertainties "
        "is >= U (the operate page's teleop.unsure_threshold; default: off)",
    )  # fmt: skip
    p.add_argument(
        "--unsure-window", type=_positive, default=5, metavar="STEPS",
        help="steps the --take-over-unsure mean covers (5)",
    )  # fmt: skip
    p.add_argument(
        "--policy-timeout", type=float, default=900.0, metavar="S",
        help="how long to wait for the learner's first policy before the rollouts (900 s)",
    )  # fmt: skip
    p.add_argument(
        "--token",
        help="API token (default: $TANDEM_TOKEN, else log in with the credentials the local "
        "server wrote under <data_dir>/secrets/)",
    )
    p.add_argument("--report", type=Path, help="write the episode reports to this JSON file")
    p.set_defaults(func=_run)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _eval_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_EVAL_EPISODES:
        raise argparse.ArgumentTypeError(f"must be <= {MAX_EVAL_EPISODES}, got {value}")
    return value


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def local_token(settings: Settings, url: str) -> str:
    """A session of the scripted operator at ``url``: the kept one while the server accepts
    it, else a new login with the credentials the server wrote.

    The server provisions them at start-up in ``<data_dir>/secrets/`` (setting
    ``server.scripted_operator``), so this works where the operator runs next to
    the server, as under ``tandem up``; elsewhere pass ``--token``. Raises
    ``LinkError`` when the server refuses and ValueError when there is no file.
    """
    from tandem.cli.operator.link import LinkError, log_in, request_json

    kept_path = session_file(settings.data_dir, OPERATOR_NAME)
    kept = read_session(kept_path)
    if kept is not None:
        try:
            request_json(url, "GET", "/api/auth/me", None, token=kept)
            return kept
        except LinkError as exc:
            log.info("kept session refused (%s): logging in again", exc)
    path = credentials_file(settings.data_dir, OPERATOR_NAME)
    credentials = read_credentials(path)
    if credentials is None:
        raise ValueError(
            f"no scripted-operator credentials at {path}: start the server with this data "
            "directory first (it writes them), or pass --token"
        )
    token = log_in(url, credentials.name, credentials.password)
    write_private(kept_path, token)
    return token


def _run(args: argparse.Namespace) -> int:
    from tandem.cli.operator.link import LinkError, ServerLink
    from tandem.cli.operator.script import OperatorPlan, ScriptedOperator
    from teleop.emulated_pad import EmulatedPad

    settings = settings_from_args(args)
    setup_logging("operator", settings.log_level, settings.data_dir / "logs" / "operator.log")
    url = args.url or f"http://127.0.0.1:{settings.server.port}"
    try:
        token = args.token or os.environ.get("TANDEM_TOKEN") or local_token(settings, url)
    except (LinkError, ValueError) as exc:
        sys.stderr.write(f"tandem demo-operator: cannot log in: {exc}\n")
        return EXIT_FAILED
    plan = OperatorPlan(
        demos=args.demos, rollouts=args.rollouts, take_over_after=args.take_over_after,
        stall_steps=args.stall_steps, policy_timeout_s=args.policy_timeout,
        eval_every=args.eval_every, eval_episodes=args.eval_episodes,
        unsure_threshold=args.take_over_unsure, unsure_window=args.unsure_window,
    )  # fmt: skip
    limits = (settings.bridge.max_translation_m, settings.bridge.max_rotation_rad)

    async def main() -> tuple[list, list]:
        async with ServerLink(url, token, args.robot) as link:
            pad = EmulatedPad(settings.teleop)
            operator = ScriptedOperator(link, pad, plan, OPERATOR_NAME, limits)
            try:
                return await operator.run(), operator.evals
            finally:
                _write_report(args.report, operator.reports)

    try:
        reports, evals = asyncio.run(main())
    except (LinkError, ValueError) as exc:
        sys.stderr.write(f"tandem demo-operator: {exc}\n")
        return EXIT_FAILED
    _print_summary(reports)
    _print_evals(evals)
    return 0


def _write_report(path: Path | None, reports: list) -> None:
    if path is not None:
        path.write_text(json.dumps([asdict(r) for r in reports], indent=1))


def _print_evals(evals: list) -> None:
    """One line per evaluation batch: autonomous successes (the policy alone)."""
    out = sys.stdout
    for e in evals:
        rate = "-" if e.success_rate is None else f"{e.success_rate:.2f}"
        versions = ",".join(f"v{v}" for v in e.weights_versions) or "-"
        out.write(
            f"evaluation after {e.after_rollouts} rollouts: {e.successes}/{len(e.episodes)} "
            f"autonomous successes ({rate}), weights {versions}, batch {e.batch}\n"
        )
    out.flush()


def _print_summary(reports: list) -> None:
    out = sys.stdout
    out.write(f"{'episode':<36} {'kind':<10} {'steps':>5} {'human':>5} {'took over':>9}  result\n")
    for r in reports:
        took = "-" if r.take_over_step is None else str(r.take_over_step)
        result = r.result or ("success" if r.success else None)
        result = result or r.labelled or r.outcome or r.end_reason or "?"
        out.write(
            f"{r.episode_id:<36} {r.kind:<10} {r.steps:>5} {r.human_steps:>5} {took:>9}  {result}\n"
        )
    out.flush()
