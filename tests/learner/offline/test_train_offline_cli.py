"""``tandem make-dataset`` and ``tandem train-offline`` end to end, for a few steps: the
bundle loads in the acting-only policy and acts as the trained policy; stages resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learner.acting import load_policy
from learner.envs import make_env, parse_env
from learner.offline.config import OfflineSettings
from learner.offline.train import OfflineTrainer
from tandem.cli.main import main

FEW = ["--critic-steps", "30", "--behavior-steps", "30", "--policy-steps", "20",
       "--batch-size", "32", "--hidden", "32", "--behavior-hidden", "32",
       "--eval-episodes", "2", "--time-limit", "15"]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    argv = ["make-dataset", "--env", "sim:drawer", "--mix", "expert:2,random:1,noisy@0.2:1",
            "--out", str(out), "--time-limit", "15", "--log-level", "WARNING"]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("method", ["srpo", "iql", "bc"])
def test_train_offline_writes_a_bundle_the_acting_policy_loads(
    method: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["train-offline", "--method", method, "--data", str(dataset), "--env", "sim:drawer",
            "--out", str(out), "--log-level", "WARNING", *FEW]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[0])
    assert result["method"] == method and 0.0 <= result["success_rate"] <= 1.0
    stages = sorted(p.stem for p in (out / "stages").glob("*.pt"))
    expected = {"srpo": ["behavior", "critic", "policy"], "iql": ["critic", "policy"],
                "bc": ["policy"]}  # fmt: skip
    assert stages == expected[method]
    policy = load_policy(out / "policy.safetensors")
    trained = torch.load(out / "stages" / "policy.pt", weights_only=True)["state"]["policy"]
    env = make_env(parse_env("sim:drawer"), cameras=(), time_limit=15)
    obs, _ = env.reset(seed=3)
    action, info = policy.act(obs, explore=False)
    assert action.shape == (7,) and info["proposal"] == "il"
    from learner.bc import BCPolicy

    again = BCPolicy(policy.spec, hidden=32, layers=2, dropout=0.0, norm_clip=10.0)
    again.load_state_dict(trained)
    with torch.no_grad():
        expected_action = again.eval()({"state": torch.as_tensor(obs["state"])[None]})[0]
    np.testing.assert_allclose(action, expected_action.numpy(), atol=1e-6)


def test_finished_stages_are_skipped_and_interrupted_ones_continue(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    base = {"critic_steps": 20, "behavior_steps": 20, "policy_steps": 10, "batch_size": 16,
            "hidden": 16, "behavior_hidden": 16, "eval_episodes": 0,
            "checkpoint_every": 10}  # fmt: skip
    env = parse_env("sim:drawer")
    OfflineTrainer(OfflineSettings(**base), env, dataset, out).run()
    critic_file = out / "stages" / "critic.pt"
    stamp = critic_file.stat().st_mtime_ns
    longer = OfflineSettings(**{**base, "behavior_steps": 40})
    trainer = OfflineTrainer(longer, env, dataset, out)
    trainer.run()
    assert critic_file.stat().st_mtime_ns == stamp  # finished: loaded, not retrained
    behavior = torch.load(out / "stages" / "behavior.pt", weights_only=True)
    assert behavior["step"] == 40  # continued from 20 to the new total


def test_train_offline_refuses_a_dataset_of_another_env(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train-offline", "--data", str(dataset), "--env", "sim:lift", "--out",
            str(tmp_path / "r"), "--log-level", "WARNING", *FEW]  # fmt: skip
    assert main(argv) == 2
    assert "dims" in capsys.readouterr().err


def test_policy_lr_sets_only_the_policy_stage_learning_rate(dataset: Path, tmp_path: Path) -> None:
    env = parse_env("sim:drawer")
    small = {"batch_size": 16, "hidden": 16, "behavior_hidden": 16, "lr": 3e-4}
    trainer = OfflineTrainer(OfflineSettings(**small, policy_lr=1e-3), env, dataset, tmp_path)
    assert trainer.policy_opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert trainer.critic.q_opt.param_groups[0]["lr"] == pytest.approx(3e-4)
    assert trainer.behavior_opt.param_groups[0]["lr"] == pytest.approx(3e-4)
    default = OfflineTrainer(OfflineSettings(**small), env, dataset, tmp_path / "d")
    assert default.policy_opt.param_groups[0]["lr"] == pytest.approx(3e-4)
    with pytest.raises(ValueError, match="policy_lr"):
        OfflineSettings(policy_lr=0.0)
