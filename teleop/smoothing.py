"""Exponential smoothing of a command vector, reset when the deadman is released."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from teleop.rotations import Array


class ExpSmoother:
    """``y = (1 - alpha) * x + alpha * y_prev`` per sample; ``alpha = 0`` passes through.

    The first sample after ``reset()`` starts from zero, so a re-engaged command
    ramps up instead of jumping to the old value.
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"smoothing alpha must be in [0, 1), got {alpha}")
        self.alpha = alpha
        self._y: Array | None = None

    def reset(self) -> None:
        self._y = None

    @property
    def last(self) -> Array | None:
        """The previous output, or None right after ``reset()``."""
        return None if self._y is None else self._y.copy()

    def __call__(self, x: ArrayLike) -> Array:
        x = np.asarray(x, dtype=np.float64)
        prev = np.zeros_like(x) if self._y is None else self._y
        self._y = (1.0 - self.alpha) * x + self.alpha * prev
        return self._y.copy()
