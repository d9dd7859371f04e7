"""``tandem learner``: the online learner service (learns from live bridges)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from tandem import security
from tandem.cli.util import add_config_argument
from tandem.logs import setup_logging
from tandem.settings import save_role_settings

log = logging.getLogger(__name__)
EXIT_CONFIG = 2  # as the CLI exits on a bad setting
HARD_EXIT_S = 60.0  # after a fatal thread failure, the process ends within this even if stuck


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "learner",
        help="run the online learner: ingest bridges' steps, train IBRL, publish weights",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="restore the last checkpoint of the run directory and rebuild the replay from "
        "the recorded episodes",
    )
    p.add_argument(
        "--demos", metavar="DIR", type=Path, default=None,
        help="recorded demonstrations (default: learner_service.demos_dir or <data_dir>/episodes)",
    )  # fmt: skip
    p.add_argument(
        "--run-dir", metavar="DIR", type=Path, default=None,
        help="run directory (default: learner_service.run_dir or <data_dir>/runs/learner)",
    )  # fmt: skip
    add_config_argument(p)
    p.set_defaults(func=_learner)


def _learner(args: argparse.Namespace) -> int:
    from learner.service.config import load_service_settings

    settings, service = load_service_settings(args.config, run_dir=args.run_dir)
    setup_logging("learner", settings.log_level)
    save_role_settings(settings, "learner")
    security.configure(settings)
    from learner.loggers import LoggerError
    from learner.service.supervise import EXIT_FATAL
    from learner.service.trainer import OnlineLearner

    learner = OnlineLearner(settings, service, resume=args.resume, demos_dir=args.demos)
    learner.supervisor.hard_exit_s = HARD_EXIT_S
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: learner.stop_event.set())
    try:
        learner.start()
    except LoggerError as exc:
        log.error("cannot start the learner: %s", exc)
        return EXIT_CONFIG
    learner.run()
    reason = learner.supervisor.fatal_reason
    if reason is not None:
        log.error("learner stopped: %s (exit code %d)", reason, EXIT_FATAL)
        return EXIT_FATAL
    log.info("learner stopped")
    return 0
