"""Tandem: the pieces every process shares (settings, message schemas, wire codec, CLI)."""

from tandem import gym_ids as _gym_ids

__version__ = "0.1.0"

_gym_ids.register_now_or_on_import()  # gymnasium.make("tandem/Lift-v0") works
