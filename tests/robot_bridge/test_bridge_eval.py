"""Evaluation batches on the bridge over real ZMQ sockets (mock backend): deterministic
acting, a policy reset at every episode start, automatic resets on a robot that resets
itself, reset_done on one that does not, a take-over counted as a failure."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from tandem.messages import (
    EndEpisode,
    ResetDone,
    StartEval,
    StartRollout,
    StopEval,
    TakeOver,
    TeleopAction,
)
from tests.robot_bridge.conftest import RecordingPolicy, Running, bridge_settings

pytestmark = pytest.mark.timeout(60)
VERSION = 7


def start(run_bridge, *, solve: bool, auto_reset: bool = True, **settings: Any):
    run: Running = run_bridge(bridge_settings(rate_hz=50.0, **settings), expert=False)
    run.bridge.auto_reset = auto_reset
    policy = RecordingPolicy(run.bridge.backend.expert() if solve else None)
    run.bridge.policy.load(policy, version=VERSION)
    return run, policy


def ends(run: Running) -> list[Any]:
    return run.sub.events("end")


def test_eval_batch_runs_deterministically_and_resets_itself(run_bridge) -> None:
    run, policy = start(run_bridge, solve=True)
    reply = run.cmd.send(StartEval(episodes=3, operator="ann"))
    assert reply.ok and reply.mode == "rollout", reply.reason
    done = run.sub.wait_for(lambda: len(ends(run)) >= 3 and ends(run), timeout=30)
    time.sleep(0.3)  # nothing more may start once the batch is done
    starts = run.sub.events("start")
    assert len(starts) == 3 and len(ends(run)) == 3
    assert [e.episode_kind for e in starts] == ["evaluation"] * 3
    assert [e.eval_index for e in starts] == [1, 2, 3]
    assert len({e.eval_batch for e in starts + done}) == 1 and starts[0].eval_batch
    assert all(e.weights_version == VERSION for e in starts + done)
    assert [e.outcome for e in done] == ["success"] * 3
    # Deterministic acting: explore=False reached the policy at every tick, and the
    # policy forgot its history at every episode start.
    assert policy.explore and not any(policy.explore)
    assert policy.resets == 3
    # The sim resets itself: no reset_done was sent between the episodes.
    status = run.sub.wait_for(
        lambda: (s := run.sub.last_status()) is not None and s.eval and not s.eval.running and s
    )
    assert status.mode == "await_reset"
    assert (status.eval.done, status.eval.successes, status.eval.total) == (3, 3, 3)
    assert status.eval.auto_reset
    # After the batch, reset_done idles the robot (it does not start a 4th evaluation).
    reply = run.cmd.send(ResetDone())
    assert reply.ok and reply.mode == "idle", reply


def test_training_rollouts_explore(run_bridge) -> None:
    run, policy = start(run_bridge, solve=True)
    assert run.cmd.send(StartRollout()).ok
    start_ev = run.sub.wait_for(lambda: run.sub.events("start"))[0]
    assert start_ev.episode_kind == "rollout" and start_ev.eval_batch is None
    run.sub.wait_for(lambda: len(policy.explore) >= 3)
    assert all(policy.explore)
    assert policy.resets == 1


def test_take_over_in_eval_is_a_failure_and_waits_for_reset(run_bridge) -> None:
    run, policy = start(run_bridge, solve=False)
    assert run.cmd.send(StartEval(episodes=2)).ok
    first = run.sub.wait_for(lambda: run.sub.events("start"))[0]
    run.sub.wait_for(lambda: len(policy.explore) >= 3)
    reply = run.cmd.send(TakeOver(operator="ann", reason="about to hit the table"))
    assert reply.ok and reply.mode == "await_reset", reply
    assert "failure" in reply.reason
    end = run.sub.wait_for(lambda: ends(run))[0]
    assert end.episode_id == first.episode_id
    assert (end.reason, end.outcome) == ("take_over", "failure")
    # No human step was ever recorded in the evaluation episode.
    steps = [d.msg for d in run.sub.get("step") if d.msg.episode_id == first.episode_id]
    assert steps and not any(s.intervention or s.action_source == "human" for s in steps)
    # A human stepped in: even a robot that resets itself waits for reset_done.
    time.sleep(0.3)
    assert len(run.sub.events("start")) == 1
    status = run.sub.wait_for(lambda: (s := run.sub.last_status()) and s.eval.done == 1 and s)
    assert status.eval.successes == 0 and status.eval.running and status.mode == "await_reset"
    reply = run.cmd.send(ResetDone())
    assert reply.ok and reply.mode == "rollout", reply
    second = run.sub.wait_for(lambda: len(run.sub.events("start")) >= 2 and run.sub.events("start"))
    assert second[1].episode_kind == "evaluation" and second[1].eval_index == 2
    # Teleop input is refused in an evaluation episode (no human).
    refused = run.cmd.send(TeleopAction(action=[0.1] * 6 + [1.0], t_input=time.monotonic()))
    assert not refused.ok
    assert run.cmd.send(EndEpisode(label="failure")).ok
    status = run.sub.wait_for(
        lambda: (s := run.sub.last_status()) and not s.eval.running and s, timeout=5
    )
    assert (status.eval.done, status.eval.successes) == (2, 0)


def test_real_robot_waits_for_reset_done_between_eval_episodes(run_bridge) -> None:
    run, policy = start(run_bridge, solve=True, auto_reset=False)
    assert run.cmd.send(StartEval(episodes=2)).ok
    run.sub.wait_for(lambda: ends(run), timeout=20)
    time.sleep(0.4)
    assert len(run.sub.events("start")) == 1, "a real robot must wait for reset_done"
    status = run.sub.wait_for(lambda: (s := run.sub.last_status()) and s.eval.done == 1 and s)
    assert status.mode == "await_reset" and not status.eval.auto_reset
    reply = run.cmd.send(ResetDone())
    assert reply.ok and reply.mode == "rollout"
    run.sub.wait_for(lambda: len(ends(run)) >= 2, timeout=20)
    assert [e.episode_kind for e in run.sub.events("start")] == ["evaluation"] * 2
    assert policy.resets == 2 and not any(policy.explore)


def test_stop_eval_discards_the_open_episode(run_bridge) -> None:
    run, _ = start(run_bridge, solve=False)
    refused = run.cmd.send(StopEval())
    assert not refused.ok and "no evaluation batch" in refused.reason
    assert run.cmd.send(StartEval(episodes=5)).ok
    run.sub.wait_for(lambda: run.sub.events("start"))
    reply = run.cmd.send(StopEval(operator="ann"))
    assert reply.ok and reply.mode == "await_reset", reply
    end = run.sub.wait_for(lambda: ends(run))[0]
    assert (end.reason, end.outcome) == ("eval_stopped", "discard")
    time.sleep(0.3)
    assert len(run.sub.events("start")) == 1
    status = run.sub.wait_for(lambda: (s := run.sub.last_status()) and not s.eval.running and s)
    assert status.eval.done == 0 and "stop_eval by ann" in status.eval.stopped_reason


def test_start_eval_needs_a_policy(run_bridge) -> None:
    run = run_bridge(expert=False)
    reply = run.cmd.send(StartEval(episodes=2))
    assert not reply.ok and "no policy" in reply.reason


def test_every_evaluation_batch_replays_the_same_scenes(run_bridge) -> None:
    run, policy = start(run_bridge, solve=True, eval_seed=500)
    for batch in (1, 2):
        assert run.cmd.send(StartEval(episodes=2)).ok
        run.sub.wait_for(lambda b=batch: len(ends(run)) >= 2 * b, timeout=20)
        assert run.cmd.send(ResetDone()).ok  # the batch is over: back to idle
    assert run.cmd.send(StartRollout()).ok  # a training rollout draws its own scene
    run.sub.wait_for(lambda: len(policy.first_states) >= 5, timeout=20)
    a1, a2, b1, b2, rollout = policy.first_states[:5]
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2) and not np.array_equal(rollout, a1)
