"""The policy slot: proposals with info, atomic swaps from another thread, failing policies."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from robot_bridge.policy import ExpertPolicy, PolicySlot

pytestmark = pytest.mark.timeout(30)
OBS = {"state": np.zeros(17, np.float32)}


class Const:
    def __init__(self, value: float, info: dict | None = None) -> None:
        self.value, self.info = value, info or {}

    def act(self, obs):
        return np.full(7, self.value), self.info


class Broken:
    def act(self, obs):
        raise RuntimeError("CUDA out of memory")


def test_empty_slot_proposes_nothing() -> None:
    slot = PolicySlot()
    assert not slot.ready and slot.act(OBS) is None and slot.version is None


def test_proposal_and_info() -> None:
    slot = PolicySlot()
    slot.load(Const(0.5, {"proposal": "rl", "q_il": 1.0, "q_rl": 2.0, "extra": 3}), version=4)
    action, info = slot.act(OBS)
    assert action.tolist() == [0.5] * 7
    assert (info.proposal, info.q_il, info.q_rl, info.weights_version) == ("rl", 1.0, 2.0, 4)


def test_expert_policy() -> None:
    slot = PolicySlot()
    slot.load(ExpertPolicy(lambda obs: [0.1] * 7))
    action, info = slot.act(OBS)
    assert action.tolist() == pytest.approx([0.1] * 7) and info.proposal == "expert"


def test_failing_policy_is_no_proposal() -> None:
    slot = PolicySlot()
    slot.load(Broken(), version=1)
    assert slot.act(OBS) is None and slot.failures == 1
    slot.load(Const(0.0, {"proposal": "bogus"}))  # invalid info is a failure too
    assert slot.act(OBS) is None and slot.failures == 2


def test_swaps_from_another_thread_are_atomic() -> None:
    slot = PolicySlot()
    slot.load(Const(0.0), version=0)
    stop = threading.Event()

    def learner() -> None:
        v = 0
        while not stop.is_set():
            v += 1
            slot.load(Const(float(v % 2)), version=v % 2)

    thread = threading.Thread(target=learner)
    thread.start()
    try:
        for _ in range(2000):
            action, info = slot.act(OBS)
            # the action always comes from the policy whose version is reported
            assert action[0] == float(info.weights_version)
    finally:
        stop.set()
        thread.join()
