"""MuJoCo picks its OpenGL backend when first imported: choose headless EGL before any test does."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
