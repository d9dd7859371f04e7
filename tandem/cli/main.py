"""The ``tandem`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tandem.cli.commands import (
    basic,
    bridge,
    keys,
    learn,
    learner_service,
    login_link,
    offline,
    operator,
    plot,
    pretrain,
    server,
    store,
    up,
)
from tandem.cli.supervisor import follow_supervisor
from tandem.settings import SettingsError

# Modules that add subcommands, in --help order.
COMMAND_MODULES = [
    basic,
    store,
    bridge,
    server,
    learn,
    pretrain,
    offline,
    plot,
    learner_service,
    up,
    operator,
    keys,
    login_link,
]
EXIT_CONFIG_ERROR = 2

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tandem",
        description="Tandem: real-robot learning with browser teleoperation and online IBRL.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    follow_supervisor()  # a child of `tandem up` stops when the launcher dies
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:
        sys.stderr.write(f"tandem: configuration error:\n{exc}\n")
        return EXIT_CONFIG_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
