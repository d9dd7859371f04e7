"""Exploration coverage in the sim tasks: end-effector voxels and object displacement cells.

Works on the canonical sim state vectors (docs/sim.md): the grip-site position is
``state[0:3]`` and the task object's position (the lift cube) is ``state[14:17]``, metres in
the world frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EE = slice(0, 3)
OBJECT = slice(14, 17)
VOXEL_M = 0.02


def voxels(points: np.ndarray, size: float = VOXEL_M) -> set[tuple[int, ...]]:
    """The distinct cells of a ``size`` grid holding the points [N, 3] (metres)."""
    cells = np.floor(np.asarray(points, np.float64) / size).astype(np.int64)
    return {tuple(c) for c in cells.tolist()}


def coverage(episodes: Sequence[np.ndarray], size: float = VOXEL_M) -> dict[str, float]:
    """Coverage of a list of episodes' states [T + 1, S] (sim state layout).

    * ``ee_voxels``: distinct end-effector cells visited;
    * ``object_cells``: distinct cells of the object's displacement from where the episode
      started (the cell at zero counts: an untouched object gives 1);
    * ``object_moved_frac``: episodes whose object moved more than one cell size;
    * ``object_max_disp_m``: the largest displacement seen.
    """
    if not episodes:
        raise ValueError("coverage needs at least one episode")
    ee = np.concatenate([ep[1:, EE] for ep in episodes])  # the states the actions reached
    disp = [ep[:, OBJECT] - ep[0, OBJECT] for ep in episodes]
    dist = [np.linalg.norm(d, axis=1).max() for d in disp]
    return {
        "steps": float(len(ee)),
        "ee_voxels": float(len(voxels(ee, size))),
        "object_cells": float(len(voxels(np.concatenate(disp), size))),
        "object_moved_frac": float(np.mean([d > size for d in dist])),
        "object_max_disp_m": float(max(dist)),
    }
