"""HDF5 export: the documented robomimic/IBRL layout, read back with h5py; ``tandem export``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from server.store import EpisodeStore, NotFoundError, Store
from tandem.messages import EpisodeKind, Outcome
from tests.server.store._support import STATE_DIM, action, image, state, write_episode

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(120)


def test_layout_and_values(store: EpisodeStore, tmp_path: Path) -> None:
    write_episode(store, "d0", n=6, started=1000.0)
    write_episode(store, "d1", n=4, started=2000.0, kind=EpisodeKind.ROLLOUT,
                  interventions=(1, 3), outcome=Outcome.FAILURE)  # fmt: skip
    out = store.export_hdf5(["d0", "d1"], tmp_path / "out" / "demos.hdf5")
    with h5py.File(out, "r") as f:
        data = f["data"]
        assert sorted(data) == ["demo_0", "demo_1"]
        assert data.attrs["total"] == 10
        env_args = json.loads(data.attrs["env_args"])  # robomimic's env metadata
        assert env_args == {"env_name": "tandem", "type": 2, "env_kwargs": {}}
        info = json.loads(data.attrs["tandem"])
        assert info["cameras"] == ["front", "wrist"] and info["state_dim"] == STATE_DIM
        assert [m.decode() for m in f["mask/train"]] == ["demo_0"]
        assert [m.decode() for m in f["mask/valid"]] == ["demo_1"]
        demo = data["demo_0"]
        assert demo.attrs["num_samples"] == 6 and demo.attrs["episode_id"] == "d0"
        assert demo.attrs["outcome"] == "success" and demo.attrs["complete"]
        assert sorted(demo["obs"]) == ["front_image", "state", "wrist_image"]
        assert demo["obs/state"].shape == (6, STATE_DIM) and demo["obs/state"].dtype == np.float32
        assert demo["obs/front_image"].shape == (6, 96, 96, 3)
        assert demo["obs/front_image"].dtype == np.uint8
        np.testing.assert_array_equal(demo["obs/wrist_image"][2], image(2, 1))
        np.testing.assert_allclose(demo["obs/state"][4], state(4))
        np.testing.assert_allclose(demo["next_obs/state"][4], state(5))
        np.testing.assert_allclose(demo["next_obs/state"][5], state(6))  # final observation
        np.testing.assert_array_equal(demo["next_obs/front_image"][5], image(6, 0))
        np.testing.assert_allclose(demo["actions"][3], action(3), rtol=1e-6)
        assert demo["actions"].shape == (6, 7)
        assert demo["rewards"][:].tolist() == [0, 0, 0, 0, 0, 1]
        assert demo["dones"].dtype == np.uint8 and demo["dones"][:].tolist() == [0] * 5 + [1]
        roll = data["demo_1"]
        assert roll.attrs["kind"] == "rollout" and roll.attrs["outcome"] == "failure"
        assert roll["interventions"][:].tolist() == [False, True, True, False]
    assert not (tmp_path / "out" / "demos.hdf5.tmp").exists()


def test_evaluation_episodes_keep_result_and_batch(
    store: EpisodeStore, stores: Store, tmp_path: Path
) -> None:
    # The learner published weights version 3 at 1200 env steps.
    stores.metrics.record_metrics("run-a", 50.0, {"weights/version": 3, "learner/env_steps": 1200})
    evaluation = EpisodeKind.EVALUATION
    for i, outcome in enumerate([None, Outcome.FAILURE]):  # the bridge fails a take-over
        extra = {"weights_version": 3, "eval_batch": "b1", "eval_index": i + 1}
        write_episode(store, f"e{i}", kind=evaluation, n=4, outcome=outcome,
                      success=outcome is None, extra=extra, started=100.0 + i)  # fmt: skip
    write_episode(store, "d0", n=3, started=200.0)
    out = store.export_hdf5(["e0", "e1", "d0"], tmp_path / "evals.hdf5")
    with h5py.File(out, "r") as f:
        auto, taken, demo = (f[f"data/demo_{i}"].attrs for i in range(3))
        assert auto["kind"] == "evaluation" and auto["result"] == "autonomous_success"
        assert (auto["weights_version"], auto["env_steps"]) == (3, 1200)
        assert (auto["eval_batch"], auto["eval_index"]) == ("b1", 1)
        assert taken["result"] == "failure" and taken["outcome"] == "failure"
        assert taken["eval_index"] == 2 and not taken["success"]
        assert demo["kind"] == "demo" and demo["result"] == ""
        assert "eval_batch" not in demo and "weights_version" not in demo


def test_robomimic_layout_of_a_sim_task(store: EpisodeStore, tmp_path: Path) -> None:
    """What robomimic's SequenceDataset and env utilities read, checked against its format:
    env_args with an int env type and kwargs the env accepts, masks naming existing demos,
    per-demo num_samples matching the arrays."""
    ids = [f"d{i}" for i in range(12)]
    for i, eid in enumerate(ids):
        write_episode(store, eid, n=3, started=100.0 + i, task="sim:lift")
    out = store.export_hdf5(ids, tmp_path / "sim.hdf5")
    with h5py.File(out, "r") as f:
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args["type"] == 2 and env_args["env_name"] == "tandem/Lift-v0"
        assert env_args["env_kwargs"] == {"cameras": ["front", "wrist"], "image_size": 96}
        train = [m.decode() for m in f["mask/train"]]
        valid = [m.decode() for m in f["mask/valid"]]
        assert valid == ["demo_9"] and len(train) == 11 and not set(train) & set(valid)
        assert set(train) | set(valid) == set(f["data"])
        for name in f["data"]:
            demo = f["data"][name]
            n = demo.attrs["num_samples"]
            assert all(demo[k].shape[0] == n for k in ("actions", "rewards", "dones"))
            assert all(demo["obs"][k].shape[0] == n for k in demo["obs"])
    import gymnasium

    import tandem  # noqa: F401  (registers the ids robomimic's env_name refers to)

    kwargs = {**env_args["env_kwargs"], "cameras": ()}  # no rendering needed here
    env = gymnasium.make(env_args["env_name"], **kwargs)
    assert env.reset(seed=0)[0]["state"].shape[0] > 0
    env.close()


def test_robomimic_sequence_dataset_reads_the_export(store: EpisodeStore, tmp_path: Path) -> None:
    """robomimic's own SequenceDataset (installed by the Makefile) loads the export, split by
    the mask/train and mask/valid filter keys."""
    from robomimic.utils import obs_utils
    from robomimic.utils.dataset import SequenceDataset

    ids = [f"d{i}" for i in range(12)]
    for i, eid in enumerate(ids):
        write_episode(store, eid, n=5, started=100.0 + i, task="sim:lift")
    out = store.export_hdf5(ids, tmp_path / "rm.hdf5")
    obs_utils.initialize_obs_utils_with_obs_specs(
        {"obs": {"low_dim": ["state"], "rgb": ["front_image", "wrist_image"]}}
    )
    sizes = {}
    for split in ("train", "valid"):
        data = SequenceDataset(
            hdf5_path=str(out), obs_keys=("state", "front_image", "wrist_image"),
            dataset_keys=("actions", "rewards", "dones"), load_next_obs=True, frame_stack=1,
            seq_length=1, pad_frame_stack=True, pad_seq_length=True, get_pad_mask=False,
            goal_mode=None, hdf5_cache_mode=None, hdf5_use_swmr=True, hdf5_normalize_obs=False,
            filter_by_attribute=split,
        )  # fmt: skip
        sizes[split] = len(data)
        item = data[0]
        assert item["actions"].shape == (1, 7) and item["obs"]["state"].shape == (1, STATE_DIM)
        assert item["obs"]["front_image"].shape[-3:] in ((96, 96, 3), (3, 96, 96))
    assert sizes == {"train": 11 * 5, "valid": 5}


def test_export_errors(store: EpisodeStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        store.export_hdf5(["missing"], tmp_path / "x.hdf5")
    with pytest.raises(ValueError):
        store.export_hdf5([], tmp_path / "x.hdf5")
    assert not (tmp_path / "x.hdf5").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tandem", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.slow
def test_cli_export(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = EpisodeStore(None, data)
    write_episode(store, "s1", n=3, started=100.0)
    write_episode(store, "f1", n=3, started=200.0, outcome=Outcome.FAILURE)
    write_episode(store, "s2", n=5, started=300.0)
    write_episode(store, "r1", n=2, started=400.0, kind=EpisodeKind.ROLLOUT)
    store.discard("s2")
    store.close()
    out = tmp_path / "demos.hdf5"
    done = _cli("export", "--data-dir", str(data), "--kind", "demo", "--outcome", "success",
                "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    with h5py.File(out, "r") as f:
        assert [f[f"data/{k}"].attrs["episode_id"] for k in sorted(f["data"])] == ["s1"]
    done = _cli("export", "--data-dir", str(data), "--ids", "r1", "s2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with h5py.File(out, "r") as f:
        assert f["data"].attrs["total"] == 7
        assert f["data/demo_0"].attrs["episode_id"] == "r1"
    bad = _cli("export", "--data-dir", str(data), "--ids", "nope", "--out", str(out))
    assert bad.returncode == 1 and "nope" in bad.stderr
    none = _cli("export", "--data-dir", str(data), "--robot", "r9", "--out", str(out))
    assert none.returncode == 1 and "no episode" in none.stderr
    broken = _cli("db", "upgrade", "--data-dir", str(data), "--database-url", "nosuchdb://x")
    assert broken.returncode == 1 and "cannot open the store" in broken.stderr
    upgrade = _cli("db", "upgrade", "--data-dir", str(data))
    assert upgrade.returncode == 0 and "revision 0002" in upgrade.stdout


@pytest.mark.slow
def test_cli_export_evaluation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = EpisodeStore(None, data)
    evaluation = EpisodeKind.EVALUATION
    for batch, start in (("b1", 100.0), ("b2", 200.0)):
        for i in range(2):
            extra = {"weights_version": 1, "eval_batch": batch, "eval_index": i + 1}
            write_episode(store, f"{batch}-{i}", kind=evaluation, n=3, outcome=None,
                          success=i == 0, extra=extra, started=start + i)  # fmt: skip
    write_episode(store, "r1", n=3, started=300.0, kind=EpisodeKind.ROLLOUT, outcome=None)
    store.close()
    out = tmp_path / "evals.hdf5"

    def exported(*filters: str) -> list[str]:
        done = _cli("export", "--data-dir", str(data), *filters, "--out", str(out))
        assert done.returncode == 0, done.stderr
        with h5py.File(out, "r") as f:
            return [f[f"data/demo_{i}"].attrs["episode_id"] for i in range(len(f["data"]))]

    assert exported("--kind", "evaluation") == ["b1-0", "b1-1", "b2-0", "b2-1"]
    assert exported("--eval-batch", "b2") == ["b2-0", "b2-1"]
    assert exported("--kind", "evaluation", "--result", "failure") == ["b1-1", "b2-1"]
    bad = _cli("export", "--data-dir", str(data), "--kind", "eval", "--out", str(out))
    assert bad.returncode == 2 and "evaluation" in bad.stderr
