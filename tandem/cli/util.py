"""Helpers shared by CLI subcommands."""

from __future__ import annotations

import argparse

from tandem.settings import Settings, load_settings


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="TOML settings file (default: $TANDEM_CONFIG); environment variables still win",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Resolve settings for a subcommand; a SettingsError propagates to ``main`` (exit 2)."""
    return load_settings(getattr(args, "config", None))
