"""Tandem: the pieces every process shares (settings, message schemas, wire codec, CLI)."""

__version__ = "0.1.0"
