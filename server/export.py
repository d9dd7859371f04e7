"""HDF5 export in the layout robomimic and IBRL read.

::

    data/                         attrs: total (int, sum of num_samples),
                                         env_args (JSON, robomimic's: env_name, type 2 =
                                         Gymnasium, env_kwargs), tandem (JSON: robots,
                                         cameras, image_shape, state_dim, action_dim)
      demo_0/                     attrs: num_samples (N), episode_id, robot_id, kind
                                         (demo, rollout, evaluation), outcome, result
                                         ("" when none), success, complete; when known:
                                         weights_version, env_steps, eval_batch, eval_index
        obs/state                 (N, D) float32   proprioception at t
        obs/<camera>_image        (N, H, W, 3) uint8, RGB, e.g. front_image, wrist_image
        next_obs/...              same keys at t+1; the last row is the episode's final
                                  observation when recorded, else a copy of obs[N-1]
        actions                   (N, 7) float32   action applied at t
        rewards                   (N,) float32
        dones                     (N,) uint8       1 on a terminated step and on the last step
        terminated, truncated     (N,) bool        as recorded (time limit = truncated)
        interventions             (N,) bool        a human drove this step (HG-DAgger)
      demo_1/ ...
    mask/train, mask/valid        demo names (bytes), robomimic's train/validation split:
                                  every 10th demo validates (at least one of two or more)

Demos are numbered in the order given. The file is written to a temporary name
and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from tandem.episodes import CAM_PREFIX, Episode
from tandem.gym_ids import GYM_IDS

if TYPE_CHECKING:
    from server.db.schemas import EpisodeOut

log = logging.getLogger(__name__)

EXPORT_VERSION = 2
ROBOMIMIC_GYM_TYPE = 2  # robomimic.envs.env_base.EnvType.GYM_TYPE


def write_hdf5(items: Sequence[tuple[EpisodeOut, Episode]], path: Path) -> Path:
    """Write ``(row, episode)`` pairs as ``data/demo_<i>``; returns ``path``."""
    if not items:
        raise ValueError("nothing to export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    total = 0
    with h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for i, (row, episode) in enumerate(items):
            total += _write_demo(data.create_group(f"demo_{i}"), row, episode)
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(_env_args(items))
        data.attrs["tandem"] = json.dumps(_tandem_info(items))
        data.attrs["tandem_export_version"] = EXPORT_VERSION
        for name, demos in split_train_valid(len(items)).items():
            f.create_dataset(f"mask/{name}", data=np.array(demos, dtype="S"))
    os.replace(tmp, path)
    log.info("exported %d episodes (%d steps) to %s", len(items), total, path)
    return path


def _write_demo(group: h5py.Group, row: EpisodeOut, episode: Episode) -> int:
    steps = episode.steps
    n = len(episode)
    obs = {"state": steps["state"].astype(np.float32)}
    obs.update({f"{cam}_image": images for cam, images in episode.images.items()})
    final = _final_obs(episode)
    obs_group, next_group = group.create_group("obs"), group.create_group("next_obs")
    for key, values in obs.items():
        obs_group.create_dataset(key, data=values)
        next_group.create_dataset(key, data=_shift(values, final.get(key)))
    terminated = steps["terminated"].astype(bool)
    dones = terminated.copy()
    if n:
        dones[-1] = True
    group.create_dataset("actions", data=steps["action"].astype(np.float32))
    group.create_dataset("rewards", data=steps["reward"].astype(np.float32))
    group.create_dataset("dones", data=dones.astype(np.uint8))
    group.create_dataset("terminated", data=terminated)
    group.create_dataset("truncated", data=steps["truncated"].astype(bool))
    group.create_dataset("interventions", data=steps["intervention"].astype(bool))
    attrs = {
        "num_samples": n,
        "episode_id": row.id,
        "robot_id": row.robot_id,
        "kind": str(row.kind),
        "outcome": "" if row.outcome is None else str(row.outcome),
        "success": bool(row.success),
        "complete": bool(row.complete),
        "result": "" if row.result is None else str(row.result),
    }
    # HDF5 attributes cannot be None: the policy and evaluation fields appear only when set.
    known = {
        "weights_version": row.weights_version,
        "env_steps": row.env_steps,
        "eval_batch": row.eval_batch,
        "eval_index": row.eval_index,
    }
    attrs.update({key: value for key, value in known.items() if value is not None})
    group.attrs.update(attrs)
    return n


def _final_obs(episode: Episode) -> dict[str, np.ndarray]:
    """Final observation keyed like ``obs`` (``state``, ``<camera>_image``)."""
    final = {}
    if "state" in episode.final:
        final["state"] = episode.final["state"].astype(np.float32)
    for cam in episode.images:
        image = episode.final.get(CAM_PREFIX + cam)
        if image is not None:
            final[f"{cam}_image"] = image
    return final


def _shift(values: np.ndarray, last: np.ndarray | None) -> np.ndarray:
    """``values`` one step ahead: row t is row t+1; the last row is ``last`` (or repeated)."""
    if len(values) == 0:
        return values
    tail = values[-1:] if last is None or last.shape != values.shape[1:] else last[None]
    return np.concatenate([values[1:], tail.astype(values.dtype)])


def split_train_valid(n: int) -> dict[str, list[str]]:
    """robomimic's filter keys: every 10th demo validates; at least one when n >= 2."""
    valid = [i for i in range(n) if i % 10 == 9] or ([n - 1] if n >= 2 else [])
    names = {"train": [i for i in range(n) if i not in valid], "valid": valid}
    return {key: [f"demo_{i}" for i in indices] for key, indices in names.items()}


def _env_args(items: Sequence[tuple[EpisodeOut, Episode]]) -> dict[str, object]:
    """robomimic's env metadata: a Gymnasium env (type 2) where the task is a sim task
    (``sim:lift`` -> ``tandem/Lift-v0``, made after ``import tandem``), else the task's name."""
    first = items[0][1].meta
    task = first.task or "tandem"
    gym_id = GYM_IDS.get(task.removeprefix("sim:")) if task.startswith("sim:") else None
    kwargs: dict[str, object] = {}
    if gym_id is not None:
        kwargs["cameras"] = first.cameras
        if first.image_shape:
            kwargs["image_size"] = first.image_shape[0]
    return {"env_name": gym_id or task, "type": ROBOMIMIC_GYM_TYPE, "env_kwargs": kwargs}


def _tandem_info(items: Sequence[tuple[EpisodeOut, Episode]]) -> dict[str, object]:
    first = items[0][1].meta
    return {
        "robots": sorted({row.robot_id for row, _ in items}),
        "cameras": first.cameras,
        "image_shape": first.image_shape,
        "state_dim": first.state_dim,
        "action_dim": int(items[0][1].steps["action"].shape[1]),
    }
