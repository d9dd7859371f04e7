"""``learner.il_kind = srpo``: an offline policy bundle becomes IBRL's IL proposal as is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from learner.acting import BundleError, load_il_policy, read_bundle
from learner.envs import make_env, parse_env
from learner.obs import ObsSpec
from learner.offline.config import OfflineSettings
from learner.offline.datasets import MixItem, make_dataset
from learner.offline.train import OfflineTrainer
from tandem.cli.main import main
from tandem.settings.learner import LearnerSettings


@pytest.fixture(scope="module")
def offline_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("handoff")
    spec = parse_env("sim:drawer")
    env = make_env(spec, cameras=(), time_limit=20)
    make_dataset(env, spec, [MixItem("expert", 0, 3), MixItem("random", 0, 1)], root / "d", 0)
    cfg = OfflineSettings(critic_steps=20, behavior_steps=20, policy_steps=20, batch_size=16,
                          hidden=32, behavior_hidden=16, eval_episodes=0)  # fmt: skip
    OfflineTrainer(cfg, spec, root / "d", root / "run").run()
    return root / "d", root / "run" / "policy.safetensors"


def test_ibrl_acts_with_the_offline_policy_as_its_il_proposal(
    offline_bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    data, bundle = offline_bundle
    out = tmp_path / "ibrl"
    argv = ["train", "--env", "sim:drawer", "--demos", str(data), "--method", "ibrl",
            "--profile", "cpu", "--steps", "30", "--eval-every", "30", "--eval-episodes", "1",
            "--il-bundle", str(bundle), "--out", str(out), "--log-level", "WARNING"]  # fmt: skip
    assert main(argv) == 0
    offline, _ = read_bundle(bundle)
    online, config = read_bundle(out / "policy.safetensors")
    assert config["learner"]["il_kind"] == "srpo"
    assert config["il_arch"]["hidden"] == 32  # the offline policy's width, not bc_hidden_dim
    for key, value in offline.items():  # the IL proposal is the offline policy, untouched
        torch.testing.assert_close(online[key], value)


def test_srpo_il_kind_needs_a_bundle_of_the_same_observations(
    offline_bundle: tuple[Path, Path],
) -> None:
    with pytest.raises(ValidationError, match="il_bundle"):
        LearnerSettings(il_kind="srpo")
    _, bundle = offline_bundle
    with pytest.raises(BundleError, match="observations"):
        load_il_policy(bundle, ObsSpec(state_dim=21, action_dim=7, raw_state_dim=21))


def test_train_refuses_a_missing_il_bundle_with_a_message(
    offline_bundle: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = offline_bundle
    missing = tmp_path / "nope.safetensors"
    argv = ["train", "--env", "sim:drawer", "--demos", str(data), "--method", "ibrl",
            "--profile", "cpu", "--steps", "30", "--il-bundle", str(missing),
            "--out", str(tmp_path / "run"), "--log-level", "WARNING"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "tandem train: not a policy bundle" in err and "nope.safetensors" in err
