"""The scripted operator's uncertainty gate: take over while the policy says it is unsure.

The policy's per-step uncertainty arrives in the ``rollout`` telemetry (``uncertainty``,
``learner.uncertainty``); the gate fires once the mean of the last ``window`` reported values
is at or above ``threshold``, the rule the operate page's "unsure" badge follows
(``teleop.unsure_threshold`` / ``teleop.unsure_window``). Steps without a value (a human
drove, an old bridge) are skipped.
"""

from __future__ import annotations

import math
from collections import deque


class UnsureGate:
    """``see(uncertainty)`` per policy step -> the take-over reason, or None."""

    def __init__(self, threshold: float, window: int) -> None:
        if not math.isfinite(threshold) or threshold < 0:
            raise ValueError(f"unsure threshold must be a finite number >= 0, got {threshold}")
        if window < 1:
            raise ValueError(f"unsure window must be >= 1 step, got {window}")
        self.threshold, self.window = threshold, window
        self._recent: deque[float] = deque(maxlen=window)

    def reset(self) -> None:
        """A new episode: forget the last one's values."""
        self._recent.clear()

    def see(self, uncertainty: object) -> str | None:
        """Record one step's value; the reason to take over once the recent mean is too high."""
        if isinstance(uncertainty, bool) or not isinstance(uncertainty, int | float):
            return None
        if not math.isfinite(uncertainty) or uncertainty < 0:
            return None
        self._recent.append(float(uncertainty))
        if len(self._recent) < self.window:
            return None
        mean = sum(self._recent) / len(self._recent)
        if mean < self.threshold:
            return None
        return (
            f"policy unsure: mean uncertainty {mean:.3f} over the last {self.window} steps "
            f">= {self.threshold:g}"
        )
