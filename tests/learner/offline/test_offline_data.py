"""Offline datasets load: a D4RL-style file, a Tandem export (robomimic layout) and the
episode store that ``tandem make-dataset`` writes; mixes parse or fail loudly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from learner.envs import make_env, parse_env
from learner.offline.data import DatasetError, load_dataset
from learner.offline.datasets import MixError, MixItem, make_dataset, parse_mix
from server.db.schemas import EpisodeOut
from server.export import write_hdf5
from tandem.episodes import list_episodes, load_episode


def test_d4rl_file_loads_with_terminals_and_timeouts(tmp_path: Path) -> None:
    # two episodes: 0-2 ends by a terminal at row 2, 3-5 ends by a timeout at row 5
    obs = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
    path = tmp_path / "d4rl.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = np.linspace(-1, 1, 6 * 3, dtype=np.float32).reshape(6, 3)
        f["rewards"] = np.array([0, 0, 1, 0, 0, 0], np.float32)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 0, 1], bool)
    data = load_dataset(path)
    # the timeout row has no next observation in the file and is dropped
    assert len(data) == 5
    assert data.terminated.tolist() == [False, False, True, False, False]
    np.testing.assert_array_equal(data.next_obs[0], obs[1])
    np.testing.assert_array_equal(data.next_obs[3], obs[4])
    assert data.episodes == 2 and data.successes == 1


def test_d4rl_file_with_next_observations_keeps_timeouts(tmp_path: Path) -> None:
    path = tmp_path / "d4rl.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.zeros((4, 2), np.float32)
        f["next_observations"] = np.ones((4, 2), np.float32)
        f["actions"] = np.zeros((4, 1), np.float32)
        f["rewards"] = np.zeros(4, np.float32)
        f["terminals"] = np.zeros(4, bool)
        f["timeouts"] = np.array([0, 1, 0, 1], bool)
    data = load_dataset(path)
    assert len(data) == 4 and not data.terminated.any()  # truncation is not termination
    np.testing.assert_array_equal(data.next_obs, np.ones((4, 2)))


@pytest.fixture(scope="module")
def lift_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store")
    spec = parse_env("sim:lift")
    env = make_env(spec, cameras=(), time_limit=15)
    counts = make_dataset(env, spec, [MixItem("expert", 0, 2), MixItem("failed", 0, 1)], out, 0)
    assert counts == {"expert": (2, 2), "failed": (1, 0)}
    return out


def test_episode_store_loads_successes_and_failures(lift_store: Path) -> None:
    data = load_dataset(lift_store, action_dim=7)
    lengths = [len(load_episode(p, images=False)) for p in list_episodes(lift_store)]
    assert len(data) == sum(lengths)  # final.npz gives every last step its next state
    assert data.episodes == 3 and data.successes == 2
    assert int(data.terminated.sum()) == 2  # the failed episode is truncated, not terminal
    assert data.reward.sum() == 2.0
    assert np.abs(data.action).max() <= 1.0


def _row(path: Path) -> EpisodeOut:
    meta = load_episode(path, images=False).meta
    now = datetime.now(UTC)
    return EpisodeOut(
        id=meta.episode_id, robot_id=meta.robot_id, kind=meta.kind, operator=None,
        task=meta.task, started_at=now, ended_at=now, length=meta.num_steps,
        outcome=meta.outcome, labeled_by=None, episode_return=meta.episode_return,
        success=meta.success, intervention_count=0, intervention_steps=0, discarded=False,
        notes="", path=str(path), recording=False, complete=True, terminated=meta.terminated,
        truncated=meta.truncated, end_reason=meta.end_reason,
    )  # fmt: skip


def test_tandem_export_loads_like_the_store(lift_store: Path, tmp_path: Path) -> None:
    paths = list_episodes(lift_store)
    export = write_hdf5(
        [(_row(p), load_episode(p, images=False)) for p in paths], tmp_path / "export.hdf5"
    )
    from_file = load_dataset(export, action_dim=7)
    from_store = load_dataset(lift_store, action_dim=7)
    assert from_file.successes == 2 and from_file.episodes == 3
    np.testing.assert_allclose(from_file.obs, from_store.obs)
    np.testing.assert_allclose(from_file.next_obs, from_store.next_obs)
    np.testing.assert_array_equal(from_file.terminated, from_store.terminated)
    np.testing.assert_allclose(from_file.action, from_store.action)


def test_actions_beyond_the_env_dims_are_refused(lift_store: Path) -> None:
    with pytest.raises(DatasetError, match="more than"):
        load_dataset(lift_store, action_dim=3)


def test_mix_parses_and_rejects_bad_items() -> None:
    mix = parse_mix("expert:3, noisy@0.2:4,random:1")
    assert [(m.label, m.count) for m in mix] == [("expert", 3), ("noisy@0.2", 4), ("random", 1)]
    for bad in ("expert", "noisy:3", "walk:2", "expert@0.1:2", "noisy@x:2", ""):
        with pytest.raises(MixError):
            parse_mix(bad)
