"""``tandem version`` and ``tandem config show [--role ROLE]``."""

from __future__ import annotations

import argparse
import sys

import tandem
from tandem.cli.util import add_config_argument, settings_from_args

ROLES = ["up", "server", "bridge", "learner"]


def register(sub: argparse._SubParsersAction) -> None:
    version = sub.add_parser("version", help="print the Tandem version")
    version.set_defaults(func=_version)

    config = sub.add_parser("config", help="inspect the resolved settings")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser(
        "show", help="print the resolved settings (defaults < TOML file < environment) as JSON"
    )
    add_config_argument(show)
    show.add_argument(
        "--role", choices=ROLES, default=None,
        help="resolve as that process does (learner: its network profile applied); each "
        "process also saves what it runs with in <data_dir>/settings/<role>.json",
    )  # fmt: skip
    show.set_defaults(func=_config_show)


def _version(args: argparse.Namespace) -> int:
    sys.stdout.write(f"tandem {tandem.__version__}\n")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.role == "learner":
        from learner.service.config import load_service_settings

        settings = load_service_settings(args.config)[0]
    sys.stdout.write(settings.model_dump_json(indent=2) + "\n")
    return 0
