"""Full training checkpoints: agent state + resolved settings + progress, written atomically.

``torch.save`` of plain containers of tensors and numbers (no pickled objects), read back with
``torch.load(weights_only=True)``. The online replay is saved beside it as an ``.npz``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learner.replay import TransitionRing

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or from another format version."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (weights only, never unpickles code)."""
    try:
        state = torch.load(Path(path), map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise CheckpointError(f"unreadable checkpoint {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def save_replay(path: str | Path, store: TransitionRing) -> Path:
    """Save the store's arrays (``np.savez``) atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **store.arrays())  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_replay(path: str | Path, store: TransitionRing) -> None:
    """Restore ``store`` from ``save_replay`` output (same capacity and shapes)."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            store.load_arrays({k: data[k] for k in data.files})
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"unreadable replay {path}: {exc}") from None
