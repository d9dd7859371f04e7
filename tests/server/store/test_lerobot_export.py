"""``tandem export --format lerobot``: a LeRobot v3.0 dataset, read back as LeRobot reads it.

The ``lerobot`` package cannot be installed beside this project's torch (it pins
torch < 2.11), so the dataset is read back with pyarrow, pandas and PyAV against the
published v3.0 layout: meta/info.json, meta/tasks.parquet (task as the pandas index),
meta/episodes/..., data/chunk-000/file-000.parquet and one MP4 per camera.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from server.lerobot_export import LeRobotExportError, write_lerobot
from server.store import EpisodeStore
from tandem.messages import EpisodeKind
from tests.server.store._support import CAMS, STATE_DIM, action, image, state, write_episode

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(120)
LENGTHS = {"d0": 6, "d1": 4, "r1": 5}


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    store = EpisodeStore(None, data)
    write_episode(store, "d0", n=6, started=100.0)
    write_episode(store, "d1", n=4, started=200.0)
    write_episode(store, "r1", n=5, started=300.0, kind=EpisodeKind.ROLLOUT, interventions=(2, 4))
    store.close()
    out = tmp_path / "lerobot"
    done = subprocess.run(
        [sys.executable, "-m", "tandem", "export", "--data-dir", str(data), "--format", "lerobot",
         "--fps", "10", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exported 3 episodes" in done.stdout
    return out


def test_frames_actions_and_metadata_load_back(dataset: Path) -> None:
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 15, 1)
    features = info["features"]
    assert features["observation.state"]["shape"] == [STATE_DIM]
    assert features["action"]["shape"] == [7]
    assert features["observation.images.front"]["dtype"] == "video"
    assert features["observation.images.front"]["shape"] == [96, 96, 3]

    frames = pq.read_table(dataset / info["data_path"].format(chunk_index=0, file_index=0))
    assert frames.num_rows == 15
    cols = frames.to_pydict()
    assert cols["episode_index"] == [0] * 6 + [1] * 4 + [2] * 5
    assert cols["frame_index"] == [*range(6), *range(4), *range(5)]
    assert cols["index"] == list(range(15))
    assert cols["timestamp"][:6] == pytest.approx([i / 10 for i in range(6)])
    np.testing.assert_allclose(np.asarray(cols["action"][8]), action(2), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(cols["observation.state"][13]), state(3), rtol=1e-6)
    assert cols["intervention"][10:] == [False, False, True, True, False]
    assert [cols["next.done"][i] for i in (5, 9, 14)] == [True, True, True]
    assert sum(cols["next.done"]) == 3

    tasks = pd.read_parquet(dataset / "meta" / "tasks.parquet")
    assert tasks.index.name == "task" and list(tasks.index) == ["robot0"]
    assert tasks.loc["robot0", "task_index"] == 0
    episodes = pq.read_table(dataset / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    rows = episodes.to_pylist()
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in rows] == [
        (0, 6), (6, 10), (10, 15)
    ]  # fmt: skip
    assert [r["tandem/episode_id"] for r in rows] == ["d0", "d1", "r1"]
    assert rows[1]["videos/observation.images.wrist/from_timestamp"] == pytest.approx(0.6)
    stats = json.loads((dataset / "meta" / "stats.json").read_text())
    assert stats["observation.state"]["count"] == [15]
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)


def test_videos_hold_every_frame_of_every_episode(dataset: Path) -> None:
    info = json.loads((dataset / "meta" / "info.json").read_text())
    episodes = pq.read_table(dataset / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    for cam_index, cam in enumerate(CAMS):
        key = f"observation.images.{cam}"
        path = dataset / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
        video = decode(path)
        assert video.shape == (15, 96, 96, 3)
        for row in episodes.to_pylist():
            first = round(row[f"videos/{key}/from_timestamp"] * info["fps"])
            for step in range(row["length"]):
                got = video[first + step].astype(int)
                error = np.abs(got - image(step, cam_index)).mean()
                assert error < 8, f"{cam} episode {row['episode_index']} step {step}: {error:.1f}"


def test_bad_selections_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LeRobotExportError, match="nothing to export"):
        write_lerobot([], tmp_path / "x", fps=10)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    store = EpisodeStore(None, tmp_path / "data")
    write_episode(store, "d0", n=3)
    items = [(store.get_episode("d0"), store.load("d0"))]
    with pytest.raises(LeRobotExportError, match="not a LeRobot dataset"):
        write_lerobot(items, tmp_path / "busy", fps=10)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    store.close()
