"""Policy bundles: acting info and loading in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from learner.acting import BundleError, load_policy
from learner.bc import BCPolicy
from learner.bundle import make_bundle, sha256
from learner.obs import ObsSpec
from tandem.messages import PolicyWeights
from tests.learner.helpers import REPO, random_batch, tiny_agent

SPEC = ObsSpec(state_dim=6, action_dim=3, raw_state_dim=3, state_stack=2)


def _bundle(tmp_path, method: str) -> tuple[bytes, object]:
    agent = tiny_agent(SPEC, method=method, num_q=2, num_k=2)
    agent.update([random_batch(SPEC, 16)])
    il = agent.il or BCPolicy(SPEC, hidden=16, layers=1, dropout=0.0)
    blob, config = make_bundle(agent.cfg, SPEC, agent=None if method == "bc" else agent, il=il)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "policy.safetensors").write_bytes(blob)
    return blob, config


@pytest.mark.timeout(180)
def test_bundles_load_in_a_fresh_process_and_act_identically(tmp_path) -> None:
    observations = [np.linspace(-1, 1, 3) * k for k in range(4)]
    local, files = {}, []
    for method in ("ibrl", "bc"):
        blob, _ = _bundle(tmp_path / method, method)
        policy = load_policy(blob)
        local[method] = [policy.act(o, explore=False) for o in observations]
        files.append(str(tmp_path / method / "policy.safetensors"))
    code = (
        "import json, numpy as np, sys\n"
        "from learner.acting import load_policy\n"
        "obs = [np.linspace(-1, 1, 3) * k for k in range(4)]\n"
        "out = {}\n"
        "for name, path in zip(('ibrl', 'bc'), sys.argv[1:]):\n"
        "    p = load_policy(path)\n"
        "    out[name] = [[a.tolist(), i] for a, i in (p.act(o, explore=False) for o in obs)]\n"
        "print(json.dumps(out))\n"
    )
    cmd = [sys.executable, "-c", code, *files]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=170, check=True)
    remote = json.loads(res.stdout.strip().splitlines()[-1])
    for method in ("ibrl", "bc"):
        for (a, info), (b, info_b) in zip(local[method], remote[method], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
            assert info["proposal"] == info_b["proposal"] in ("il", "rl")
            if method == "ibrl":
                assert np.isfinite(info["q_il"]) and np.isfinite(info["q_rl"])
            else:
                assert info["proposal"] == "il"


def test_bundle_fits_the_policy_weights_message(tmp_path) -> None:
    blob, config = _bundle(tmp_path, "ibrl")
    msg = PolicyWeights(run_id="r", version=1, sha256=sha256(blob), method="ibrl", config=config)
    assert msg.sha256 == sha256((tmp_path / "policy.safetensors").read_bytes())


def test_policy_stacks_states_and_resets() -> None:
    blob, _ = _bundle_mem("rlpd")
    policy = load_policy(blob)
    obs_a, obs_b = np.ones(3), -np.ones(3)
    first, _ = policy.act(obs_a, explore=False)
    policy.act(obs_b, explore=False)
    policy.reset()
    again, _ = policy.act(obs_a, explore=False)
    np.testing.assert_array_equal(first, again)
    policy.act(obs_b, explore=False)
    no_reset, _ = policy.act(obs_a, explore=False)  # stack [b, a], not [a, a]
    assert not np.allclose(no_reset, first)


def _bundle_mem(method: str, **overrides: object) -> tuple[bytes, object]:
    torch.manual_seed(0)
    agent = tiny_agent(SPEC, method=method, **overrides)
    return make_bundle(agent.cfg, SPEC, agent=agent, il=agent.il)


def test_the_bridge_acts_with_the_selection_rule_the_learner_trained_with() -> None:
    """select_lcb travels in the bundle: with an untrained critic the bound keeps the IL
    proposal in charge, where the reference rule flips a coin."""
    observations = [np.full(3, 0.05 * k - 1.0) for k in range(40)]
    shares = {}
    for lcb in (None, 1.0):
        policy = load_policy(_bundle_mem("ibrl", num_q=5, select_lcb=lcb)[0])
        assert policy.cfg.select_lcb == lcb
        picks = [policy.act(o, explore=False)[1]["proposal"] for o in observations]
        shares[lcb] = picks.count("il") / len(picks)
    assert shares[1.0] >= 0.75 and shares[1.0] >= shares[None] + 0.3


def test_garbage_is_rejected() -> None:
    with pytest.raises(BundleError):
        load_policy(b"not a bundle at all")


def test_a_view_of_the_bytes_loads_and_a_full_shm_falls_back(monkeypatch) -> None:
    """The bridge hands the loader a zero-copy view of the ZMQ frame; where /dev/shm cannot
    take the spill (a container's is 64 MB), the ordinary temporary directory does."""
    from learner import acting

    blob, _ = _bundle_mem("ibrl")
    obs = {"state": np.zeros(SPEC.state_dim, np.float32)}
    expected, _ = load_policy(blob).act(obs, explore=False)
    monkeypatch.setattr(acting, "_SHM", ("/nonexistent-shm",))
    action, _ = load_policy(memoryview(blob).toreadonly()).act(obs, explore=False)
    np.testing.assert_array_equal(action, expected)


def test_training_rollouts_explore_and_evaluation_does_not() -> None:
    """rl method: the action is the RL proposal, so noise shows directly in it."""
    policy = load_policy(_bundle_mem("rl")[0])
    obs = np.full(3, 0.3)
    evals = [policy.act(obs, explore=False)[0] for _ in range(5)]
    for action in evals[1:]:
        np.testing.assert_array_equal(action, evals[0])
    policy.reset()
    trained = [policy.act(obs)[0] for _ in range(5)]  # the default is a training rollout
    assert all(np.abs(a - evals[0]).max() > 1e-4 for a in trained)
    assert np.abs(trained[0] - trained[1]).max() > 1e-4


def test_exploration_noise_is_on_the_rl_proposal_only() -> None:
    """ibrl: a step where the IL proposal wins executes it noise-free."""
    torch.manual_seed(1)
    policy = load_policy(_bundle_mem("ibrl")[0])
    assert policy.il is not None
    il_seen = 0
    for k in range(40):
        obs = np.full(3, 0.05 * k - 1.0)
        policy.reset()
        action, info = policy.act(obs, explore=True)
        if info["proposal"] == "il":
            il_seen += 1
            state = torch.as_tensor(np.tile(obs, 2), dtype=torch.float32)[None]
            expected = policy.il({"state": state})[0].detach().numpy()
            np.testing.assert_allclose(action, expected, atol=1e-6)
    assert il_seen > 0


def test_an_il_only_bundle_acts_with_the_il_policy_alone() -> None:
    """Warm-up bundles: no agent inside, every action is the IL proposal."""
    torch.manual_seed(0)
    agent = tiny_agent(SPEC, method="ibrl")
    hybrid, _ = make_bundle(agent.cfg, SPEC, agent=agent, il=agent.il)
    blob, config = make_bundle(agent.cfg, SPEC, agent=agent, il=agent.il, il_only=True)
    assert config["il_only"] and len(blob) < len(hybrid)
    policy = load_policy(blob)
    assert policy.rl is None and policy.il is not None
    obs = np.array([0.2, -0.4, 0.9])
    action, info = policy.act(obs, explore=True)
    assert info["proposal"] == "il"
    state = torch.as_tensor(np.tile(obs, 2), dtype=torch.float32)[None]
    np.testing.assert_allclose(action, policy.il({"state": state})[0].detach().numpy(), atol=1e-6)
    with pytest.raises(ValueError):
        make_bundle(agent.cfg, SPEC, agent=agent, il=None, il_only=True)
