"""Export episodes as a LeRobot dataset (format v3.0): parquet frames, MP4 videos, metadata.

::

    ROOT/
      meta/info.json                          codebase_version v3.0, fps, features, paths
      meta/stats.json                         min, max, mean, std, count per feature
      meta/tasks.parquet                      task (the pandas index) -> task_index
      meta/episodes/chunk-000/file-000.parquet  one row per episode: length, task, where
                                              its frames and video segments are
      data/chunk-000/file-000.parquet         one row per frame (all episodes)
      videos/observation.images.CAM/chunk-000/file-000.mp4   all episodes, one after another

Frame columns: ``observation.state`` and ``action`` (fixed-size float32 lists),
``next.reward``, ``next.done``, ``intervention`` (a human drove the step), and the
index columns ``timestamp`` (frame index / fps, within the episode), ``frame_index``,
``episode_index``, ``index`` (over the dataset) and ``task_index``. The task of an
episode is its recorded task (e.g. ``sim:lift``). Each camera is one H.264 stream
(yuv420p, keyframe every 2 frames for random access); an episode is the segment from
``from_timestamp`` to ``to_timestamp`` of its file. Everything is written under a
temporary directory and renamed into place, so a reader never sees half a dataset.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tandem.episodes import Episode

if TYPE_CHECKING:
    from server.db.schemas import EpisodeOut

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
CODEC, PIX_FMT, GOP = "libx264", "yuv420p", 2
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class LeRobotExportError(ValueError):
    """The episodes cannot form one LeRobot dataset (nothing given, mixed shapes...)."""


def write_lerobot(items: Sequence[tuple[EpisodeOut, Episode]], root: Path, fps: int) -> Path:
    """Write ``(row, episode)`` pairs as a LeRobot v3.0 dataset at ``root``; returns it."""
    _require_packages()
    episodes = [ep for _, ep in items]
    _check(episodes, root)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tasks = sorted({_task(ep) for ep in episodes})
    frames = _frames(episodes, tasks, fps)
    _write_parquet(tmp / DATA_PATH.format(chunk_index=0, file_index=0), frames)
    cameras = episodes[0].meta.cameras
    for cam in cameras:
        _write_video(tmp / _video_path(cam), [ep.images[cam] for ep in episodes], fps)
    _write_parquet(tmp / EPISODES_PATH, _episode_rows(items, tasks, cameras, fps))
    _write_tasks(tmp / "meta" / "tasks.parquet", tasks)
    _write_json(tmp / "meta" / "stats.json", _stats(frames, episodes))
    _write_json(tmp / "meta" / "info.json", _info(episodes, len(tasks), fps))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log.info("exported %d episodes (%d frames) as a LeRobot dataset at %s", len(episodes),
             len(frames["index"]), root)  # fmt: skip
    return root


def _require_packages() -> None:
    try:
        import av  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise LeRobotExportError(
            f"the LeRobot export needs pyarrow and PyAV ({exc.name} is missing): "
            "pip install 'tandem[lerobot]'"
        ) from exc


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


def _video_path(camera: str) -> str:
    return VIDEO_PATH.format(video_key=image_key(camera), chunk_index=0, file_index=0)


def _task(ep: Episode) -> str:
    return ep.meta.task or ep.meta.robot_id


def _check(episodes: list[Episode], root: Path) -> None:
    if not episodes:
        raise LeRobotExportError("nothing to export")
    if root.exists() and not (root / "meta" / "info.json").exists() and any(root.iterdir()):
        raise LeRobotExportError(f"{root} exists and is not a LeRobot dataset: not overwriting")
    first = episodes[0]
    for ep in episodes:
        same = (ep.meta.cameras, ep.meta.image_shape, ep.steps["state"].shape[1:]) == (
            first.meta.cameras, first.meta.image_shape, first.steps["state"].shape[1:]
        )  # fmt: skip
        if not same:
            raise LeRobotExportError(
                f"episode {ep.meta.episode_id} has other cameras or shapes than "
                f"{first.meta.episode_id}: export them as separate datasets"
            )
        if len(ep) == 0:
            raise LeRobotExportError(f"episode {ep.meta.episode_id} has no steps")
    shape = first.meta.image_shape
    if first.meta.cameras and shape and (shape[0] % 2 or shape[1] % 2):
        raise LeRobotExportError(f"H.264 (yuv420p) needs even image sizes, not {shape[:2]}")


def _frames(episodes: list[Episode], tasks: list[str], fps: int) -> dict[str, np.ndarray]:
    """Every frame's columns, episodes one after another."""
    cols: dict[str, list[np.ndarray]] = {}
    for ep_index, ep in enumerate(episodes):
        n, steps = len(ep), ep.steps
        done = steps["terminated"].astype(bool).copy()
        done[-1] = True
        parts = {
            "observation.state": steps["state"].astype(np.float32),
            "action": steps["action"].astype(np.float32),
            "next.reward": steps["reward"].astype(np.float32),
            "next.done": done,
            "intervention": steps["intervention"].astype(bool),
            "timestamp": (np.arange(n) / fps).astype(np.float32),
            "frame_index": np.arange(n, dtype=np.int64),
            "episode_index": np.full(n, ep_index, np.int64),
            "task_index": np.full(n, tasks.index(_task(ep)), np.int64),
        }
        for key, value in parts.items():
            cols.setdefault(key, []).append(value)
    frames = {key: np.concatenate(values) for key, values in cols.items()}
    frames["index"] = np.arange(len(frames["frame_index"]), dtype=np.int64)
    return frames


def _episode_rows(
    items: Sequence[tuple[EpisodeOut, Episode]], tasks: list[str], cameras: list[str], fps: int
) -> dict[str, Any]:
    rows: dict[str, list[Any]] = {}
    start = 0
    for ep_index, (row, ep) in enumerate(items):
        n = len(ep)
        values: dict[str, Any] = {
            "episode_index": ep_index, "tasks": [_task(ep)], "length": n,
            "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": start, "dataset_to_index": start + n,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
            "tandem/episode_id": row.id, "tandem/kind": str(row.kind),
            "tandem/result": "" if row.result is None else str(row.result),
        }  # fmt: skip
        for cam in cameras:
            key = image_key(cam)
            values |= {f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": 0,
                       f"videos/{key}/from_timestamp": start / fps,
                       f"videos/{key}/to_timestamp": (start + n) / fps}  # fmt: skip
        for key, value in values.items():
            rows.setdefault(key, []).append(value)
        start += n
    return rows


def _features(episodes: list[Episode], fps: int) -> dict[str, Any]:
    first = episodes[0]
    state_dim, action_dim = first.steps["state"].shape[1], first.steps["action"].shape[1]
    features: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": None},
        "action": {"dtype": "float32", "shape": [action_dim], "names": None},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        "intervention": {"dtype": "bool", "shape": [1], "names": None},
    }
    for cam in first.meta.cameras:
        h, w, c = first.images[cam].shape[1:]
        features[image_key(cam)] = {
            "dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": "h264",
                     "video.pix_fmt": PIX_FMT, "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": c, "has_audio": False},
        }  # fmt: skip
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for key in INDEX_FEATURES[1:]:
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def _info(episodes: list[Episode], num_tasks: int, fps: int) -> dict[str, Any]:
    total = sum(len(ep) for ep in episodes)
    return {
        "codebase_version": CODEBASE_VERSION, "robot_type": "tandem",
        "total_episodes": len(episodes), "total_frames": total, "total_tasks": num_tasks,
        "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
        "fps": fps, "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH, "video_path": VIDEO_PATH if episodes[0].meta.cameras else None,
        "features": _features(episodes, fps),
    }  # fmt: skip


def _stats(frames: dict[str, np.ndarray], episodes: list[Episode]) -> dict[str, Any]:
    """Per-feature statistics; images per channel on [0, 1], shaped (C, 1, 1)."""
    stats = {key: _summary(np.asarray(value, np.float64).reshape(len(value), -1))
             for key, value in frames.items()}  # fmt: skip
    for cam in episodes[0].meta.cameras:
        pixels = np.concatenate([ep.images[cam] for ep in episodes]).astype(np.float64) / 255.0
        per_channel = _summary(pixels.reshape(-1, pixels.shape[-1]))
        stats[image_key(cam)] = {
            k: (np.asarray(v)[:, None, None].tolist() if k != "count" else v)
            for k, v in per_channel.items()
        }
    return stats


def _summary(values: np.ndarray) -> dict[str, Any]:
    return {"min": values.min(0).tolist(), "max": values.max(0).tolist(),
            "mean": values.mean(0).tolist(), "std": values.std(0).tolist(),
            "count": [len(values)]}  # fmt: skip


def _write_parquet(path: Path, columns: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for key, value in columns.items():
        if isinstance(value, np.ndarray) and value.ndim == 2:  # fixed-size vectors
            flat = pa.array(value.reshape(-1))
            arrays[key] = pa.FixedSizeListArray.from_arrays(flat, value.shape[1])
        else:
            arrays[key] = pa.array(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path)


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """``task`` is the table's pandas index, as LeRobot reads it (``pd.read_parquet``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "task": pa.array(tasks, pa.string())})  # fmt: skip
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "tandem", "version": "1"},
        "pandas_version": "2.0.0",
    }  # fmt: skip
    table = table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _write_video(path: Path, clips: list[np.ndarray], fps: int) -> None:
    """All clips (N, H, W, 3 uint8 RGB) as one H.264 stream at ``fps``."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = clips[0].shape[1:3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODEC, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = w, h, PIX_FMT
        stream.codec_context.gop_size = GOP
        stream.options = {"crf": "18"}
        for clip in clips:
            for image in clip:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
