"""Subcommands of the ``tandem`` CLI; each module exposes ``register(subparsers)``."""
