"""DAgger and HG-DAgger with a scripted expert (``learner.dagger``, ``tandem train --expert``).

The algorithm tests run the real rounds on the toy reaching task with a deterministic
expert defined here; the end-to-end test runs ``tandem train --method dagger`` on sim:lift.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from learner.acting import load_policy
from learner.dagger import (
    Aggregate,
    DAggerRun,
    DAggerTrainer,
    ExpertError,
    HGDAggerDriver,
    Labeller,
    beta_at,
    load_expert,
    roll_out,
)
from learner.demos import record_episode, write_demo
from learner.envs import make_env, parse_env
from learner.obs import ObsSpec
from learner.train import TrainArgs
from tandem.cli.main import main
from tandem.settings import Settings
from tests.learner.helpers import REPO, tiny_settings

TOY = parse_env("gym:tandem/PointReach-v0", imports=["learner.toy_env"])
TOY_ARGS = ["--env", "gym:tandem/PointReach-v0", "--import", "learner.toy_env"]


def reach_expert(obs: np.ndarray) -> np.ndarray:
    """Deterministic toy expert: full speed towards the goal, slowing down near it."""
    state = np.asarray(obs, np.float64)
    return np.clip((state[2:4] - state[0:2]) / 0.1, -1.0, 1.0).astype(np.float32)


def wrong_shape_expert(obs: np.ndarray) -> np.ndarray:
    return np.zeros(3, np.float32)


@pytest.fixture(scope="module")
def toy_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two demos of ``reach_expert`` on the toy task."""
    root = tmp_path_factory.mktemp("toy_demos")
    env = make_env(TOY)
    for seed in (0, 1):
        steps, final, summary = record_episode(env, reach_expert, seed=seed)
        assert summary["success"]
        write_demo(root, env, TOY, steps, final_obs=final, summary=summary, policy_name="reach")
    return root


def toy_run(tmp_path: Path, demos: Path, steps: int = 200, **cfg: object) -> DAggerRun:
    settings = Settings(learner=tiny_settings(bc_steps=20, eval_episodes=2, **cfg))
    trainer = DAggerTrainer(settings, TrainArgs(TOY, demos, steps, tmp_path / "run"), reach_expert)
    return DAggerRun(trainer, reach_expert)


def expert_labels_of(states: np.ndarray) -> np.ndarray:
    return np.stack([reach_expert(s) for s in states])


def test_dagger_round_labels_every_visited_state_with_the_experts_action(
    tmp_path: Path, toy_demos: Path
) -> None:
    run = toy_run(tmp_path, toy_demos, method="dagger", dagger_episodes=3)
    demo_pairs = len(run.data)
    assert demo_pairs == run.demo_labels > 0
    rollouts = run.collect()
    visited = sum(len(r) for r in rollouts)
    assert len(rollouts) == 3 and visited == run.t.env_step
    assert len(run.data) == demo_pairs + visited == run.expert_labels
    assert all(r.labelled.all() for r in rollouts)
    new_states, new_labels = run.data.obs["state"][demo_pairs:], run.data.actions[demo_pairs:]
    assert np.concatenate([r.obs["state"] for r in rollouts]) == pytest.approx(new_states)
    assert new_labels == pytest.approx(expert_labels_of(new_states), abs=1e-6)
    # beta = 0: the untrained policy acted, not the expert
    executed = np.concatenate([r.actions for r in rollouts])
    assert np.abs(executed - new_labels).max() > 0.1


def test_the_aggregate_grows_by_exactly_the_labelled_states_of_each_round(
    tmp_path: Path, toy_demos: Path
) -> None:
    for method in ("dagger", "hg_dagger"):
        run = toy_run(tmp_path / method, toy_demos, method=method, dagger_episodes=2)
        for _ in range(3):
            before, labels_before = len(run.data), run.expert_labels
            rollouts = run.collect()
            labelled = sum(int(r.labelled.sum()) for r in rollouts)
            assert len(run.data) - before == labelled == run.expert_labels - labels_before
            run.refit()
        assert run.expert_labels == run.demo_labels + run.rollout_labels


def test_dagger_beta_one_executes_the_experts_labels(tmp_path: Path, toy_demos: Path) -> None:
    run = toy_run(tmp_path, toy_demos, method="dagger", dagger_beta=1.0, dagger_episodes=2)
    rollouts = run.collect()
    assert all(r.success for r in rollouts)  # the expert drove
    for r in rollouts:
        assert r.actions == pytest.approx(r.labels)
    assert beta_at(0.8, 0.5, 1) == 0.8 and beta_at(0.8, 0.5, 3) == pytest.approx(0.2)


@pytest.mark.parametrize(("patience", "take_over"), [(1, 4), (3, 6)])
def test_hg_dagger_labels_only_the_correction_after_the_take_over(
    patience: int, take_over: int
) -> None:
    env = make_env(TOY)
    spec = ObsSpec(state_dim=4, action_dim=2, raw_state_dim=4)
    labeller = Labeller(reach_expert, env)
    driver = HGDAggerDriver(threshold=0.5, stall_steps=None, stall_m=0.01, patience=patience)
    steps = {"n": 0}

    def policy(obs: dict[str, np.ndarray]) -> np.ndarray:
        """Copies the expert for 4 steps, then stands still (a policy that errs)."""
        steps["n"] += 1
        return reach_expert(obs["state"]) if steps["n"] <= 4 else np.zeros(2, np.float32)

    r = roll_out(env, spec, policy, labeller, driver, seed=5, max_steps=100)
    assert r.take_over == take_over and r.success
    assert not r.labelled[:take_over].any() and r.labelled[take_over:].all()
    assert r.actions[4:take_over] == pytest.approx(np.zeros((take_over - 4, 2)))  # still policy
    obs, labels = r.labelled_part()
    assert len(labels) == len(r) - take_over
    assert labels == pytest.approx(expert_labels_of(obs["state"]), abs=1e-6)
    assert r.actions[take_over:] == pytest.approx(r.labels[take_over:])  # the expert drives
    data = Aggregate()
    data.add(obs, labels)
    assert len(data) == len(r) - take_over


def test_hg_dagger_stall_gate_fires_when_the_hand_stops() -> None:
    driver = HGDAggerDriver(threshold=None, stall_steps=3, stall_m=0.01)
    driver.begin()
    policy, label = np.zeros(2, np.float32), np.ones(2, np.float32)

    def ask() -> np.ndarray:
        return label

    moving = [np.array([0.1 * t, 0.0, 0.0]) for t in range(5)]
    assert all(driver.choose(t, policy, ask, p)[1] is None for t, p in enumerate(moving))
    still = np.array([0.5, 0.0, 0.0])
    assert driver.choose(5, policy, ask, still)[1] is None
    assert driver.choose(6, policy, ask, still)[1] is None
    action, got = driver.choose(7, policy, ask, still + 0.001)
    assert driver.take_over == 7 and driver.reason and "stalled" in driver.reason
    assert got is label and action is label


# ----------------------------------------------------------------------- --expert validation
@pytest.mark.parametrize(
    ("expert", "message"),
    [
        ("sim", "--expert must be MODULE:ATTR"),
        ("no_such_module_xyz:expert", "cannot import module 'no_such_module_xyz'"),
        ("learner.toy_env:NoSuchExpert", "module 'learner.toy_env' has no attribute 'NoSuch"),
        ("learner.toy_env:ENV_ID", "a str is not callable"),
        ("sim:expert_for", "is a task factory; it needs a sim:TASK env"),
    ],
)
def test_expert_that_cannot_be_loaded_is_refused_with_a_precise_message(
    expert: str, message: str, toy_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["train", *TOY_ARGS, "--demos", str(toy_demos), "--method", "dagger",
                 "--expert", expert, "--steps", "10", "--out", str(out)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("tandem train: ") and message in err, err
    assert not out.exists()  # refused before the run directory is made
    with pytest.raises(ExpertError, match=re.escape(message)):
        load_expert(expert, TOY)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "dagger"], "--method dagger needs --expert MODULE:ATTR"),
        (["--method", "hg_dagger"], "--method hg_dagger needs --expert MODULE:ATTR"),
        (["--method", "ibrl", "--expert", "sim:expert_for"], "--expert is used by --method"),
        (
            ["--method", "dagger", "--expert", "sim:expert_for", "--il-bundle", "x.safetensors"],
            "cannot take --il-bundle",
        ),
    ],
)
def test_expert_and_method_must_go_together(
    args: list[str], message: str, toy_demos: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code = main(["train", *TOY_ARGS, "--demos", str(toy_demos), *args, "--steps", "10",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err


def test_expert_with_the_wrong_action_shape_is_refused(
    toy_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text('[learner]\nobs = "state"\nbc_steps = 5\nbc_hidden_dim = 16\n'
                      'bc_layers = 1\nbatch_size = 8\nthreads = 1\n')  # fmt: skip
    code = main(["train", *TOY_ARGS, "--demos", str(toy_demos), "--method", "dagger",
                 "--expert", "tests.learner.test_dagger:wrong_shape_expert", "--steps", "10",
                 "--config", str(config), "--out", str(tmp_path / "run"),
                 "--eval-episodes", "1"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "answered an array of shape (3,)" in err and "needs 2 finite numbers" in err, err


# ------------------------------------------------------------------------------ end to end
CONFIG = """
[learner]
obs = "state"
threads = 1
bc_hidden_dim = 32
bc_layers = 1
bc_steps = 50
batch_size = 32
bc_dropout = 0.0
time_limit = 15
dagger_episodes = 2
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tandem_train_dagger_on_sim_lift_writes_its_logs_and_bundle(tmp_path: Path) -> None:
    def tandem(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tandem", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=240, check=False)  # fmt: skip

    demos, out, config = tmp_path / "demos", tmp_path / "run", tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    res = tandem("record-demos", "--env", "sim:lift", "--episodes", "2", "--out", str(demos),
                 "--cameras", "none", "--seed", "1000")  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = tandem("train", "--env", "sim:lift", "--demos", str(demos), "--method", "dagger",
                 "--expert", "sim:expert_for", "--steps", "40", "--config", str(config),
                 "--eval-episodes", "2", "--out", str(out), "--log-level", "WARNING")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    with open(out / "dagger.csv") as f:
        rounds = list(csv.DictReader(f))
    with open(out / "eval.csv") as f:
        evals = list(csv.DictReader(f))
    assert len(rounds) >= 2 and len(evals) == len(rounds)
    demo_labels = int(rounds[0]["expert_labels"])
    assert demo_labels == int(rounds[0]["demo_labels"]) > 0
    assert int(rounds[-1]["env_step"]) == 40
    for row in rounds:  # dagger: the expert labelled every rollout step
        assert int(row["expert_labels"]) == demo_labels + int(row["env_step"])
        assert 0.0 <= float(row["success_rate"]) <= 1.0
    assert [e["env_step"] for e in evals] == [r["env_step"] for r in rounds]
    policy = load_policy(str(out / "policy.safetensors"))
    action, info = policy.act(np.zeros(21, np.float32))
    assert action.shape == (7,) and info["proposal"] == "il"
    assert "success" in res.stdout and str(out) in res.stdout
