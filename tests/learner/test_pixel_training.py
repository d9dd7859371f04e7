"""Pixel pipeline end to end: Dict observations with a camera, ViT agent, ResNet IL policy,
frame stacking, bundle acting on dict observations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import learner.toy_env  # noqa: F401  (registers the env ids)
from learner.acting import load_policy
from learner.demos import load_demos, record_episode, resolve_policy, write_demo
from learner.envs import make_env, parse_env
from learner.train import TrainArgs, Trainer
from tandem.settings import load_settings

TINY_PIXELS = {
    "obs": "pixels", "device": "cpu", "threads": 1, "frame_stack": 2, "hidden_dim": 32,
    "spatial_emb": 32, "vit_dim": 16, "actor_compress": 16, "batch_size": 8, "min_buffer": 8,
    "warmup_episodes": 1, "bc_steps": 5, "bc_hidden_dim": 16, "bc_resnet_width": 4,
    "buffer_size": 2000, "log_every": 10, "eval_every": 30, "eval_episodes": 1,
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_pixel_ibrl_trains_and_its_bundle_acts_on_dict_observations(tmp_path: Path) -> None:
    spec = parse_env("gym:tandem/PointReachPixels-v0", {"horizon": 10})
    env = make_env(spec)
    assert env.cameras == ["top"]
    policy = resolve_policy("learner.toy_env:NoisyReachExpert", spec, {"speed": 1.0, "noise": 0.0})
    kept = 0
    for seed in range(40):
        steps, final, summary = record_episode(env, policy, seed=seed)
        if summary["success"]:
            write_demo(tmp_path / "demos", env, spec, steps, final_obs=final, summary=summary,
                       policy_name="toy")  # fmt: skip
            kept += 1
        if kept == 2:
            break
    demos = load_demos(tmp_path / "demos", action_dim=2, cameras=("top",))
    assert demos[0].images["top"].shape[1:] == (48, 48, 3)
    settings = load_settings(None, learner={**TINY_PIXELS, "method": "ibrl"})
    rows = Trainer(settings, TrainArgs(spec, tmp_path / "demos", 30, tmp_path / "run")).run()
    assert [r["env_step"] for r in rows] == [0, 30]
    bundle = load_policy(tmp_path / "run" / "policy.safetensors")
    obs, _ = env.reset(seed=0)
    action, info = bundle.act(obs)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)
    assert info["proposal"] in ("il", "rl") and np.isfinite(info["q_il"])
