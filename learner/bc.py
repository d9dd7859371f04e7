"""The MSE imitation policy under its historical name: ``BCPolicy`` and ``bc_update``.

The policy kinds (mse, gaussian, gmm, diffusion, bins) live in ``learner.il``; ``BCPolicy``
is the ``mse`` kind and ``bc_update`` is the update every kind shares.
"""

from __future__ import annotations

from learner.il.base import il_update as bc_update
from learner.il.mse import BCPolicy

__all__ = ["BCPolicy", "bc_update"]
