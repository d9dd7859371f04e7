"""The policy slot passes exploration through and resets the policy at episode starts."""

from __future__ import annotations

import numpy as np
import pytest

from robot_bridge.policy import ExpertPolicy, PolicySlot

pytestmark = pytest.mark.timeout(60)
OBS = {"state": np.zeros(3, np.float32)}


class Recording:
    """Remembers every ``explore`` it was asked for and every reset."""

    def __init__(self) -> None:
        self.explore: list[bool] = []
        self.resets = 0

    def act(self, obs, explore: bool = True):
        self.explore.append(explore)
        return np.zeros(7), {"proposal": "rl"}

    def reset(self) -> None:
        self.resets += 1


class Legacy:
    """A deterministic policy with ``act(obs)`` only."""

    def act(self, obs):
        return np.full(7, 0.25), {"proposal": "rl"}


def test_explore_reaches_the_policy_and_defaults_to_training() -> None:
    policy, slot = Recording(), PolicySlot()
    slot.load(policy, version=1)
    slot.act(OBS)
    slot.act(OBS, explore=False)
    slot.act(OBS, explore=True)
    assert policy.explore == [True, False, True]


def test_reset_calls_the_policy_reset_and_an_empty_slot_ignores_it() -> None:
    slot = PolicySlot()
    slot.reset()  # nothing loaded: no error
    policy = Recording()
    slot.load(policy, version=1)
    slot.reset()
    slot.reset()
    assert policy.resets == 2


def test_a_policy_without_explore_or_reset_still_acts() -> None:
    slot = PolicySlot()
    slot.load(Legacy(), version=3)
    slot.reset()
    result = slot.act(OBS, explore=False)
    assert result is not None and result[0].tolist() == [0.25] * 7 and slot.failures == 0


def test_expert_ignores_explore_and_has_a_no_op_reset() -> None:
    expert = ExpertPolicy(lambda obs: np.full(7, 0.5))
    slot = PolicySlot()
    slot.load(expert)
    slot.reset()
    a, info = slot.act(OBS, explore=True)
    b, _ = slot.act(OBS, explore=False)
    assert a.tolist() == b.tolist() == [0.5] * 7 and info.proposal == "expert"


def test_a_learned_bundle_explores_in_training_and_is_deterministic_in_evaluation() -> None:
    """The real bundle behind the slot, stacking 2 states (learner/acting.py)."""
    torch = pytest.importorskip("torch")
    from learner.acting import load_policy
    from learner.bundle import make_bundle
    from learner.obs import ObsSpec
    from tests.learner.helpers import tiny_agent

    torch.manual_seed(0)
    spec = ObsSpec(state_dim=6, action_dim=7, raw_state_dim=3, state_stack=2)
    agent = tiny_agent(spec, method="rl")
    blob, _ = make_bundle(agent.cfg, spec, agent=agent, il=None)
    slot = PolicySlot()
    slot.load(load_policy(blob), version=1)
    obs_a, obs_b = {"state": np.full(3, 0.5, np.float32)}, {"state": -np.ones(3, np.float32)}
    first = slot.act(obs_a, explore=False)
    assert first is not None
    evals = [slot.act(obs_a, explore=False) for _ in range(3)]  # the stack fills with a
    assert all(e is not None and np.array_equal(e[0], first[0]) for e in evals)
    trained = slot.act(obs_a, explore=True)
    assert trained is not None and not np.allclose(trained[0], first[0])
    slot.act(obs_b, explore=False)
    mixed = slot.act(obs_a, explore=False)  # stack [b, a]
    slot.reset()
    fresh = slot.act(obs_a, explore=False)  # stack [a, a] again
    assert mixed is not None and fresh is not None
    assert not np.allclose(mixed[0], first[0]) and np.array_equal(fresh[0], first[0])
