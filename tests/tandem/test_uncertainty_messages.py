"""The policy's uncertainty in messages: optional (old senders still validate), refused with
a precise error when it is not a finite number >= 0, carried from the bridge's step record to
the browser's ``rollout`` telemetry, and never a reason for the policy slot to stop acting."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from pydantic import ValidationError

from robot_bridge.policy import PolicySlot
from tandem import wire
from tandem.messages import (
    ActionSource,
    ControlMode,
    EpisodeKind,
    PolicyInfo,
    RolloutSample,
    StepRecord,
)

OBS = {"state": np.zeros(17, np.float32)}


def _step(policy_info: dict | None) -> dict:
    return {
        "robot_id": "r0", "episode_id": "e1", "episode_kind": EpisodeKind.ROLLOUT.value,
        "step": 3, "mode": ControlMode.ROLLOUT.value, "state": [0.0] * 17,
        "action": [0.0] * 7, "action_source": ActionSource.POLICY.value,
        "t_obs": time.monotonic(), "policy_info": policy_info,
    }  # fmt: skip


def test_a_step_from_an_old_sender_without_the_field_still_validates() -> None:
    old = {"proposal": "rl", "q_il": 0.1, "q_rl": 0.2, "weights_version": 4}
    rec = StepRecord.model_validate_json(json.dumps(_step(old)))
    assert rec.policy_info is not None and rec.policy_info.uncertainty is None
    sample = json.loads(RolloutSample.of(rec).to_json())
    assert sample["uncertainty"] is None and sample["q_rl"] == 0.2


def test_the_uncertainty_travels_over_the_wire_into_the_rollout_telemetry() -> None:
    rec = StepRecord.model_validate(_step({"proposal": "il", "uncertainty": 0.25}))
    decoded = wire.decode(wire.encode(rec), expect=StepRecord).msg
    assert isinstance(decoded, StepRecord)
    sample = json.loads(RolloutSample.of(decoded).to_json())
    assert sample["type"] == "rollout" and sample["uncertainty"] == 0.25


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (-0.1, "Input should be greater than or equal to 0"),
        ("unsure", "Input should be a valid number, unable to parse string as a number"),
        (math.inf, "Input should be a finite number"),
    ],
)
def test_bad_values_are_refused_with_a_precise_error(value: object, why: str) -> None:
    with pytest.raises(ValidationError) as info:
        PolicyInfo.model_validate({"proposal": "rl", "uncertainty": value})
    (error,) = info.value.errors()
    assert error["loc"] == ("uncertainty",) and error["msg"] == why
    text = json.dumps(_step({"uncertainty": "NaN"})).replace('"NaN"', "NaN")
    finite = r"policy_info\.uncertainty\n  Input should be a finite number"
    with pytest.raises(ValidationError, match=finite):
        StepRecord.model_validate_json(text)


class Reports:
    """A policy reporting ``uncertainty`` with its action."""

    def __init__(self, uncertainty: object) -> None:
        self.uncertainty = uncertainty

    def act(self, obs):
        return np.full(7, 0.1), {"proposal": "rl", "uncertainty": self.uncertainty}


def test_the_slot_passes_a_good_value_on_and_drops_a_bad_one_but_still_acts() -> None:
    slot = PolicySlot()
    slot.load(Reports(0.4), version=2)
    action, info = slot.act(OBS)
    assert info.uncertainty == 0.4 and info.weights_version == 2
    for bad in (math.nan, -1.0, "high", [0.1]):
        slot.load(Reports(bad), version=3)
        result = slot.act(OBS)
        assert result is not None, bad  # the action is kept: the robot does not hold
        action, info = result
        assert action.tolist() == [0.1] * 7 and info.uncertainty is None
    assert slot.failures == 0


def test_a_learned_policy_in_the_slot_reports_an_uncertainty_the_telemetry_carries() -> None:
    """The bridge's path: a real bundle policy in the slot, its info in a step record, the
    step record as the browser's ``rollout`` message."""
    import torch

    from learner.acting import load_policy
    from learner.bundle import make_bundle
    from learner.obs import ObsSpec
    from tests.learner.helpers import tiny_agent

    spec = ObsSpec(state_dim=17, action_dim=7, raw_state_dim=17)
    torch.manual_seed(0)
    agent = tiny_agent(spec, method="ibrl", actor_dropout=0.5)
    blob, _ = make_bundle(agent.cfg, spec, agent=agent, il=agent.il)
    slot = PolicySlot()
    slot.load(load_policy(blob), version=5)
    result = slot.act(OBS, explore=True)
    assert result is not None and slot.failures == 0
    action, info = result
    assert action.shape == (7,) and np.all(np.abs(action) <= 1)
    assert info.uncertainty is not None and info.uncertainty > 0
    rec = StepRecord.model_validate({**_step(None), "policy_info": info.model_dump()})
    sample = json.loads(RolloutSample.of(rec).to_json())
    assert sample["uncertainty"] == info.uncertainty and sample["weights_version"] == 5
