"""``tandem record-demos`` and ``tandem train`` as real subprocesses (tiny runs)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from learner.checkpoint import load_checkpoint
from tandem.cli.main import main
from tandem.episodes import list_episodes, read_meta
from tests.learner.helpers import REPO

TOY = ["--env", "gym:tandem/PointReach-v0", "--import", "learner.toy_env"]
CONFIG = """
[learner]
obs = "state"
threads = 1
hidden_dim = 32
state_actor_layers = 1
critic_layers = 1
num_q = 2
batch_size = 32
min_buffer = 32
warmup_episodes = 2
bc_hidden_dim = 32
bc_layers = 1
bc_steps = 50
buffer_size = 5000
log_every = 50
checkpoint_every = 100000
"""


def tandem(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tandem", *args]
    return subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def eval_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demos")
    res = tandem(
        "record-demos",
        *TOY,
        "--policy",
        "learner.toy_env:NoisyReachExpert",
        "--policy-args",
        '{"speed": 1.0, "noise": 0.1}',
        "--episodes",
        "3",
        "--out",
        str(out),
        "--seed",
        "3",
    )
    assert res.returncode == 0, res.stderr
    return out


def test_record_demos_writes_complete_successful_demo_episodes(demos: Path) -> None:
    paths = list_episodes(demos)
    assert len(paths) == 3
    for path in paths:
        meta = read_meta(path)
        assert meta.kind == "demo" and meta.complete and meta.success and meta.outcome == "success"
        assert meta.extra["action_dim"] == 2 and meta.state_dim == 4
        assert (path / "final.npz").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_train_writes_run_directory_and_resumes(demos: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    run = tmp_path / "run"
    common = [
        "--demos",
        str(demos),
        "--config",
        str(config),
        "--eval-every",
        "100",
        "--eval-episodes",
        "3",
        "--log-level",
        "WARNING",
    ]
    res = tandem("train", *TOY, *common, "--method", "ibrl", "--steps", "200", "--out", str(run))
    assert res.returncode == 0, res.stderr
    assert "IL pre-training" in res.stderr  # the progress bar
    rows = eval_rows(run / "eval.csv")
    assert [int(r["env_step"]) for r in rows] == [0, 100, 200]
    assert {"success_rate", "mean_return"} <= set(rows[0])
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines and "critic/loss" in lines[-1]["metrics"]
    assert json.loads((run / "settings.json").read_text())["learner"]["method"] == "ibrl"
    assert (run / "policy.safetensors").stat().st_size > 0
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["progress"]["env_step"] == 200

    res = tandem("train", *TOY, *common, "--method", "ibrl", "--steps", "300", "--resume", str(run))
    assert res.returncode == 0, res.stderr
    rows = eval_rows(run / "eval.csv")
    assert [int(r["env_step"]) for r in rows] == [0, 100, 200, 300]
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["progress"]["env_step"] == 300


@pytest.mark.parametrize("kind", ["sim", "gym"])
def test_time_limit_truncates_training_and_evaluation_episodes(kind: str) -> None:
    from learner.envs import make_env, parse_env

    spec = parse_env("sim:lift" if kind == "sim" else "gym:Pendulum-v1")
    env = make_env(spec, cameras=(), time_limit=7)
    env.reset(seed=0)
    ends = [env.step(np.zeros(env.action_dim, np.float32))[2:4] for _ in range(7)]
    assert ends[:6] == [(False, False)] * 6 and ends[6] == (False, True)
    env.close()


@pytest.mark.timeout(240)
def test_train_bc_evaluates_the_il_policy(demos: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    code = main(
        [
            "train-bc",
            *TOY,
            "--demos",
            str(demos),
            "--config",
            str(config),
            "--eval-episodes",
            "3",
            "--out",
            str(tmp_path / "bc"),
        ]
    )
    assert code == 0
    assert "success" in capsys.readouterr().out
    rows = eval_rows(tmp_path / "bc" / "eval.csv")
    assert len(rows) == 1 and rows[0]["env_step"] == "0"


@pytest.mark.timeout(240)
def test_plot_groups_the_seeds_of_train_runs(demos: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    for seed in (0, 1):
        code = main(["train-bc", *TOY, "--demos", str(demos), "--config", str(config),
                     "--eval-episodes", "4", "--seed", str(seed),
                     "--out", str(tmp_path / "runs" / f"bc{seed}")])  # fmt: skip
        assert code == 0
        info = json.loads((tmp_path / "runs" / f"bc{seed}" / "run.json").read_text())
        assert info == {"env": "gym:tandem/PointReach-v0", "method": "bc", "seed": seed, "steps": 0}
    capsys.readouterr()
    png = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path / "runs"), "--out", str(png)]) == 0
    assert "2 run(s), curves: gym:tandem/PointReach-v0 bc" in capsys.readouterr().out
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 300 and image.std() > 0
    assert main(["plot", str(tmp_path / "nothing-here"), "--out", str(png)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["plot", str(demos), "--out", str(png)]) == 2
    assert "no eval.csv" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_loggers_receive_training_and_evaluation_scalars(
    demos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    for kind in ("tensorboard", "wandb"):
        code = main(["train", *TOY, "--demos", str(demos), "--config", str(config),
                     "--method", "ibrl", "--steps", "100", "--eval-every", "50",
                     "--eval-episodes", "2", "--logger", kind, "--out", str(tmp_path / kind),
                     "--log-level", "WARNING"])  # fmt: skip
        assert code == 0
    events = EventAccumulator(str(tmp_path / "tensorboard" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"eval/success_rate", "eval/mean_return", "critic/loss", "train/env_steps_per_s"} <= tags
    assert [e.step for e in events.Scalars("eval/success_rate")] == [0, 50, 100]
    csv_rates = [float(r["success_rate"]) for r in eval_rows(tmp_path / "tensorboard" / "eval.csv")]
    tb_rates = [e.value for e in events.Scalars("eval/success_rate")]
    assert tb_rates == pytest.approx(csv_rates)
    offline = list((tmp_path / "wandb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0


def test_bad_input_gives_clear_errors(demos: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--env", "nope", "--demos", str(demos), "--steps", "10"]) == 2
    assert "gym:ID" in capsys.readouterr().err
    assert main(["train", *TOY, "--demos", str(tmp_path), "--steps", "10"]) == 2
    assert "no complete successful episodes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", *TOY, "--demos", str(demos), "--steps", "10", "--method", "sac"])
    assert "invalid choice" in capsys.readouterr().err
    out = str(tmp_path / "x")
    assert main(["record-demos", "--env", "gym:Pendulum-v1", "--episodes", "1", "--out", out]) == 2
    assert "expert is only defined for sim" in capsys.readouterr().err
    assert (
        main(["record-demos", *TOY, "--policy", "nope:thing", "--episodes", "1", "--out", out]) == 2
    )
    assert "cannot load policy" in capsys.readouterr().err


def test_record_demos_for_the_sim_expert(tmp_path: Path) -> None:
    res = tandem(
        "record-demos",
        "--env",
        "sim:lift",
        "--policy",
        "sim:expert_for",
        "--episodes",
        "2",
        "--cameras",
        "none",
        "--out",
        str(tmp_path),
    )
    if "cannot load policy" in res.stderr:  # the sim package without its convenience exports
        res = tandem(
            "record-demos",
            "--env",
            "sim:lift",
            "--episodes",
            "2",
            "--cameras",
            "none",
            "--out",
            str(tmp_path),
        )
    assert res.returncode == 0, res.stderr
    metas = [read_meta(p) for p in list_episodes(tmp_path)]
    assert len(metas) == 2 and all(m.task == "sim:lift" and m.state_dim > 14 for m in metas)


@pytest.mark.timeout(240)
def test_train_from_the_servers_hdf5_export(demos: Path, tmp_path: Path) -> None:
    import shutil

    import h5py

    from learner.demos import load_demos
    from server.store import EpisodeStore

    data = tmp_path / "data"
    shutil.copytree(demos, data / "episodes")
    store = EpisodeStore(f"sqlite:///{data / 'tandem.db'}", data)
    store.reconcile()  # index the recorded demos as the server does at start
    rows, total = store.list_episodes()
    export = store.export_hdf5([r.id for r in rows], tmp_path / "demos.hdf5")
    assert total == 3
    with h5py.File(export) as f:
        assert f["data"].attrs["total"] == sum(len(g["actions"]) for g in f["data"].values())
    from_dir = load_demos(demos, action_dim=2)
    from_file = load_demos(export, action_dim=2)
    assert len(from_file) == len(from_dir) == 3
    for a, b in zip(sorted(from_dir, key=len_of), sorted(from_file, key=len_of), strict=True):
        np.testing.assert_allclose(a.states, b.states)
        np.testing.assert_allclose(a.actions, b.actions)
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    res = tandem(
        "train",
        *TOY,
        "--demos",
        str(export),
        "--config",
        str(config),
        "--method",
        "ibrl",
        "--steps",
        "100",
        "--eval-every",
        "100",
        "--eval-episodes",
        "2",
        "--out",
        str(tmp_path / "run"),
    )
    assert res.returncode == 0, res.stderr
    assert len(eval_rows(tmp_path / "run" / "eval.csv")) == 2


def len_of(demo) -> tuple:
    return (len(demo.actions), demo.states[0].tolist())
