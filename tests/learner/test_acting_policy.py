"""The acting-only policy: a saved bundle acts exactly as the agent it came from, and
loading it needs none of the training code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import learner.toy_env  # noqa: F401  (registers the env ids)
from learner.acting import BundlePolicy, load_policy
from learner.bundle import make_bundle
from learner.demos import record_episode, resolve_policy, write_demo
from learner.envs import make_env, parse_env
from learner.ibrl import IBRLAgent
from learner.obs import ObsSpec, Stacker, to_torch
from learner.train import TrainArgs, Trainer
from tandem.settings import load_settings
from tests.learner.helpers import REPO, TINY, random_batch, tiny_agent

ENV = "gym:tandem/PointReach-v0"
TRAIN = {
    **TINY, "method": "ibrl", "bc_steps": 20, "warmup_episodes": 1, "eval_every": 10_000,
    "eval_episodes": 1, "log_every": 10_000, "checkpoint_every": 100_000, "state_stack": 2,
}  # fmt: skip
PIXELS = ObsSpec(state_dim=4, action_dim=3, raw_state_dim=4, cameras=("top",),
                 image_shape=(48, 48, 3))  # fmt: skip
STATES = ObsSpec(state_dim=6, action_dim=3, raw_state_dim=3, state_stack=2)


def _same_choice(policy: BundlePolicy, agent: IBRLAgent, obs: dict, explore: bool) -> None:
    torch.manual_seed(7)  # the random critic heads, exploration noise, soft selection
    expected, info = agent.act(obs, explore=explore)
    torch.manual_seed(7)
    action, use_il, q_rl, q_il = policy.act_batch(obs, explore=explore)
    torch.testing.assert_close(action, expected, rtol=0, atol=1e-6)
    assert torch.equal(use_il, info["use_il"])
    torch.testing.assert_close(q_rl, info["q_rl"], rtol=0, atol=1e-5, equal_nan=True)
    torch.testing.assert_close(q_il, info["q_il"], rtol=0, atol=1e-5, equal_nan=True)


@pytest.mark.timeout(240)
def test_the_bundle_the_trainer_saved_acts_as_its_agent_does_in_evaluation(
    tmp_path: Path,
) -> None:
    spec = parse_env(ENV)
    env = make_env(spec)
    expert = resolve_policy("learner.toy_env:NoisyReachExpert", spec, {"seed": 0})
    for seed in range(3):
        steps, final, summary = record_episode(env, expert, seed=seed)
        write_demo(tmp_path / "demos", env, spec, steps, final_obs=final, summary=summary,
                   policy_name="toy")  # fmt: skip
    trainer = Trainer(load_settings(None, learner=TRAIN),
                      TrainArgs(spec, tmp_path / "demos", 120, tmp_path / "run"))  # fmt: skip
    trainer.run()
    agent = trainer.agent
    assert agent is not None and agent.num_updates > 0
    policy = load_policy(tmp_path / "run" / "policy.safetensors")
    assert policy.rl is not None and policy.rl.il is not None
    _same_choice(policy, agent, random_batch(trainer.spec, 64)["obs"], explore=False)

    stacker = Stacker(trainer.spec)  # and one episode through act(), stacking as the agent
    obs, _ = env.reset(seed=123)
    for t in range(10):
        stacked = stacker.reset(obs) if t == 0 else stacker.step(obs)
        torch.manual_seed(t)  # the same random critic heads for both
        expected, info = agent.act(to_torch(stacked, "cpu"), explore=False)
        torch.manual_seed(t)
        action, chosen = policy.act(obs, explore=False)
        np.testing.assert_allclose(action, expected[0].numpy(), rtol=0, atol=1e-6)
        assert chosen["proposal"] == ("il" if bool(info["use_il"][0]) else "rl")
        obs, *_ = env.step(action)


@pytest.mark.parametrize(
    ("spec", "method"),
    [(STATES, "rl"), (STATES, "rlpd"), (STATES, "ibrl_soft"), (PIXELS, "ibrl")],
    ids=["rl", "rlpd", "ibrl_soft", "ibrl-pixels"],
)
def test_every_method_acts_as_the_agent_with_and_without_exploration(
    spec: ObsSpec, method: str
) -> None:
    torch.manual_seed(0)
    agent = tiny_agent(spec, method=method, vit_dim=16, actor_compress=16, spatial_emb=16,
                       pixel_num_q=2, stddev_max=0.5, stddev_steps=10_000)  # fmt: skip
    agent.env_steps = 5000  # half-way down the exploration schedule: std 0.3
    agent.update([random_batch(spec, 16)])  # targets now differ from the online networks
    blob, _ = make_bundle(agent.cfg, spec, agent=agent, il=agent.il)
    policy = load_policy(blob)
    obs = random_batch(spec, 32, seed=3)["obs"]
    for explore in (False, True):
        _same_choice(policy, agent, obs, explore=explore)


def test_an_il_only_bundle_has_no_rl_proposal_to_ask_for() -> None:
    agent = tiny_agent(STATES, method="ibrl")
    blob, _ = make_bundle(agent.cfg, STATES, agent=agent, il=agent.il, il_only=True)
    with pytest.raises(ValueError, match="IL-only"):
        load_policy(blob).act_batch(random_batch(STATES, 2)["obs"], explore=False)


def test_acting_loads_no_training_code(tmp_path: Path) -> None:
    """A process that only acts (the robot bridge) imports none of the optimiser, target,
    replay or service code."""
    torch.manual_seed(0)
    agent = tiny_agent(STATES, method="ibrl")
    blob, _ = make_bundle(agent.cfg, STATES, agent=agent, il=agent.il)
    (tmp_path / "policy.safetensors").write_bytes(blob)
    code = (
        "import json, sys\n"
        "from learner.acting import load_policy\n"
        "policy = load_policy(sys.argv[1])\n"
        "policy.act([0.1, 0.2, 0.3], explore=True)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('learner'))))\n"
    )
    cmd = [sys.executable, "-c", code, str(tmp_path / "policy.safetensors")]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "learner.acting" in loaded
    training = {"learner.ibrl", "learner.bundle", "learner.train", "learner.replay",
                "learner.checkpoint", "learner.demos", "learner.service"}  # fmt: skip
    assert not loaded & training
