"""The learner service with real processes on loopback (issue 5, Done when)."""

from __future__ import annotations

import pytest
import zmq

from tandem.messages import EndEpisode, HandBack, ResetDone, StartRollout, TakeOver
from tests.e2e.service_harness import Operator, System, record_demo, wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def system(tmp_path):
    s = System(tmp_path, zmq.Context.instance())
    yield s
    s.close()


def _record_demos(system, bridge, successes: int, tries: int = 5) -> int:
    ok = 0
    for _ in range(tries):
        ok += record_demo(system, bridge).reason == "success"
        if ok >= successes:
            return ok
    raise AssertionError(f"only {ok} of {tries} expert demos succeeded\n{system.dump_logs()}")


def _rollout_with_takeover(system, bridge, policy_steps: int, human_steps: int) -> None:
    """A rollout: the policy acts, the operator takes over for a while, hands back, episode ends."""
    n_steps = len(bridge.steps())
    assert bridge.client.send(StartRollout()).ok
    wait(lambda: len(bridge.steps()) >= n_steps + policy_steps, 20, "policy steps", system)
    assert bridge.client.send(TakeOver(operator="expert")).ok
    human = lambda: sum(s.intervention for s in bridge.steps()[n_steps:])  # noqa: E731
    wait(lambda: human() >= human_steps or bridge.status().mode == "await_reset", 20, "takeover")
    if bridge.status().mode == "intervention":
        assert bridge.client.send(HandBack()).ok
    wait(lambda: bridge.status().mode == "await_reset", 30, "rollout end", system)
    assert bridge.client.send(ResetDone()).ok


@pytest.mark.timeout(170)
def test_demos_pretrain_publish_rollout_intervention_refit(system):
    bridge = system.start_bridge("r0")
    system.start_learner()
    reply = bridge.client.send(StartRollout())
    assert not reply.ok and "no policy" in reply.reason  # refused until the first weights
    operator = Operator(bridge, system.ctx)
    try:
        _record_demos(system, bridge, successes=2)
        # The learner pre-trains on the demos and publishes; the bridge loads and reports it.
        system.wait_metric("weights/version", lambda v: v >= 1, 60)
        wait(lambda: (bridge.status().weights_version or 0) >= 1, 30, "bridge weights", system)
        assert bridge.status().policy_ready
        _rollout_with_takeover(system, bridge, policy_steps=5, human_steps=14)
        human_steps = sum(s.intervention for s in bridge.steps())
        assert human_steps >= 10
        # Every human step of the rollout is in the imitation data, and triggered a refit.
        system.wait_metric("data/intervention_steps", lambda v: v == human_steps, 30)
        system.wait_metric("buffer/interventions", lambda v: v == human_steps, 5)
        system.wait_metric("hil/refits", lambda v: v >= 1, 60)
        refit_version = int(system.wait_metric("hil/refit_weights_version", lambda v: v >= 2, 5))
        wait(lambda: (bridge.status().weights_version or 0) >= refit_version, 30, "refit weights")
        # The bridge acts with the refitted weights.
        n = len(bridge.steps())
        assert bridge.client.send(StartRollout()).ok
        wait(lambda: len(bridge.steps()) >= n + 5, 20, "rollout steps", system)
        acted = [s.policy_info.weights_version for s in bridge.steps()[n:] if s.policy_info]
        assert acted and min(acted) >= refit_version
        bridge.client.send(EndEpisode(label="failure"))
        wait(lambda: bridge.status().weights_lag == 0, 10, "lag 0", system)
        m = system.metrics()
        assert m["ingest/gaps"] == 0 and m["ingest/malformed"] == 0
        assert m["data/demo_episodes"] >= 2 and m["buffer/demo"] > 0
        assert m["hil/intervention_rate"] is not None and m["hil/intervention_rate"] > 0
    finally:
        operator.close()
