"""``tandem pretrain`` end to end, and its encoder in ``tandem train`` (real subprocesses,
the toy pixel env, tiny networks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from learner.acting import load_policy
from learner.checkpoint import load_checkpoint
from learner.offline.data import load_episode_store
from tests.learner.helpers import REPO
from tests.learner.test_learn_cli import tandem

PIXELS = ["--env", "gym:tandem/PointReachPixels-v0", "--import", "learner.toy_env",
          "--env-kwargs", '{"size": 48}']  # fmt: skip
CONFIG = """
[learner]
obs = "pixels"
device = "cpu"
threads = 1
vit_dim = 8
vit_heads = 2
spatial_emb = 16
actor_compress = 8
hidden_dim = 32
batch_size = 16
min_buffer = 16
warmup_episodes = 2
proto_prototypes = 8
proto_latent_dim = 8
proto_pred_hidden = 16
bc_hidden_dim = 32
bc_steps = 20
bc_resnet_width = 4
buffer_size = 5000
time_limit = 20
log_every = 20
eval_every = 1000
eval_episodes = 1
checkpoint_every = 100000
"""
STEPS = 100


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pretrain")
    (root / "tiny.toml").write_text(CONFIG)
    out = root / "run"
    res = tandem("pretrain", *PIXELS, "--steps", str(STEPS), "--out", str(out),
                 "--config", str(root / "tiny.toml"), "--log-level", "WARNING")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "learner.encoder_init" in res.stdout
    return out


@pytest.mark.timeout(300)
def test_pretrain_writes_encoder_metrics_and_the_exploration_episodes(pretrained: Path) -> None:
    state = load_checkpoint(pretrained / "encoder.pt")
    assert state["kind"] == "tandem-proto-encoder"
    assert state["model"]["prototypes"].shape == (8, 8)
    lines = [json.loads(x) for x in (pretrained / "metrics.jsonl").read_text().splitlines()]
    trained = [line["metrics"] for line in lines if "proto/loss" in line["metrics"]]
    assert trained, "no update was logged"
    for key in ("proto/loss", "proto/intrinsic_reward", "critic/loss", "actor/loss"):
        assert all(math.isfinite(m[key]) for m in trained), key
    prior = load_episode_store(pretrained / "episodes")  # usable as prior data
    assert len(prior) == STEPS
    assert prior.episodes == STEPS // 20  # time_limit 20
    saved = json.loads((pretrained / "settings.json").read_text())["learner"]
    assert saved["method"] == "rl" and saved["n_step"] == 1
    explorer = load_policy(pretrained / "explorer.safetensors")  # the bridge's policy = "play"
    assert explorer.method == "rl" and explorer.spec.cameras
    encoder = {f"encoder.{k}": v for k, v in explorer.rl.encoder.state_dict().items()}
    for name, value in encoder.items():  # the pre-trained encoder f acts
        assert torch.equal(value, state["model"][name]), name


@pytest.mark.timeout(300)
def test_train_loads_the_encoder_frozen_and_adds_the_curiosity_bonus(
    pretrained: Path, tmp_path: Path
) -> None:
    demos = tmp_path / "demos"
    res = tandem("record-demos", *PIXELS, "--policy", "learner.toy_env:NoisyReachExpert",
                 "--episodes", "2", "--out", str(demos))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    config = tmp_path / "train.toml"
    config.write_text(CONFIG + f'encoder_init = "{pretrained / "encoder.pt"}"\n'
                      "intrinsic_bonus = 0.5\n")  # fmt: skip
    out = tmp_path / "run"
    res = tandem("train", *PIXELS, "--demos", str(demos), "--method", "ibrl", "--steps", "60",
                 "--config", str(config), "--out", str(out), "--log-level", "WARNING")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(x)["metrics"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    bonus = [m["proto/intrinsic_reward"] for m in lines if "proto/intrinsic_reward" in m]
    assert bonus and all(b > 0 for b in bonus)
    encoder = load_checkpoint(out / "checkpoints" / "latest.pt")["agent"]["encoder"]
    pre = load_checkpoint(pretrained / "encoder.pt")["model"]
    for name, value in encoder.items():  # frozen (the default): still the pre-trained one
        assert torch.equal(value, pre[f"encoder.{name}"]), name


def test_pretrain_refuses_a_bad_step_count_and_an_env_without_cameras() -> None:
    res = tandem("pretrain", *PIXELS, "--steps", "0", "--out", "/nonexistent/x")
    assert res.returncode == 2 and "--steps must be >= 1" in res.stderr
    res = tandem("pretrain", "--env", "gym:tandem/PointReach-v0", "--import", "learner.toy_env",
                 "--steps", "5", "--out", str(REPO / "runs" / "never"))  # fmt: skip
    assert res.returncode == 2 and "no camera images" in res.stderr
    assert not (REPO / "runs" / "never" / "encoder.pt").exists()
