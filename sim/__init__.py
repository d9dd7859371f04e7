"""MuJoCo tabletop tasks (lift, drawer) as Gymnasium environments, with scripted experts.

Importing this package sets ``MUJOCO_GL=egl`` unless already set (headless offscreen rendering)
and registers the Gymnasium ids ``tandem/Lift-v0`` and ``tandem/Drawer-v0``; their keyword
arguments are those of :func:`make_env`.
"""

from __future__ import annotations

import logging
import os
import sys

# MuJoCo chooses its OpenGL backend when it is first imported, so this must come before that.
if "mujoco" in sys.modules and "MUJOCO_GL" not in os.environ:
    logging.getLogger(__name__).warning(
        "mujoco was imported before the sim package without MUJOCO_GL set; offscreen "
        "rendering may fail. Set MUJOCO_GL=egl in the environment."
    )
os.environ.setdefault("MUJOCO_GL", "egl")

from collections.abc import Sequence

from sim.env import CAMERA_NAMES, PROPRIO_DIM, TabletopEnv
from sim.experts import expert_for
from tandem import gym_ids
from tandem.gym_ids import GYM_IDS

TASKS: tuple[str, ...] = ("lift", "drawer", "detour")

__all__ = [
    "CAMERA_NAMES",
    "GYM_IDS",
    "PROPRIO_DIM",
    "TASKS",
    "TabletopEnv",
    "expert_for",
    "make_env",
]


def make_env(
    task: str,
    *,
    image_size: int = 96,
    cameras: Sequence[str] = CAMERA_NAMES,
    horizon: int = 200,
    max_translation_m: float = 0.05,
    max_rotation_rad: float = 0.2,
    render_mode: str | None = None,
) -> TabletopEnv:
    """A new environment of ``task`` ("lift", "drawer" or "detour"); see TabletopEnv.

    ``cameras=()`` gives a state-only observation and never renders. ``render_mode`` is
    Gymnasium's: "rgb_array" makes ``render()`` return the front camera image.
    """
    return TabletopEnv(
        task,
        image_size=image_size,
        cameras=cameras,
        horizon=horizon,
        max_translation_m=max_translation_m,
        max_rotation_rad=max_rotation_rad,
        render_mode=render_mode,
    )


gym_ids.register()
