"""The bridge over real ZMQ sockets with the mock backend: modes, episodes, steps, watchdog."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from tandem.messages import (
    ClearEStop,
    EndEpisode,
    EStop,
    HandBack,
    LabelEpisode,
    Ping,
    ResetDone,
    StartDemo,
    StartRollout,
    TakeOver,
    TeleopAction,
)
from tests.robot_bridge.conftest import bridge_settings

pytestmark = pytest.mark.timeout(60)


def teleop(action: list[float]) -> TeleopAction:
    return TeleopAction(action=action, t_input=time.monotonic())


def steps_of(run, episode_id: str):
    return [d for d in run.sub.get("step") if d.msg.episode_id == episode_id]


def test_demo_episode_teleop_label_and_next_episode(run_bridge) -> None:
    run = run_bridge()
    reply = run.cmd.send(StartDemo(operator="ann"))
    assert reply.ok and reply.mode == "teleop", reply.reason
    start = run.sub.wait_for(lambda: run.sub.events("start"))[0]
    assert start.episode_kind == "demo" and start.operator == "ann"
    for _ in range(6):
        assert run.cmd.send(teleop([0.5, 0, 0, 0, 0, 0, 1.0])).ok
        time.sleep(0.05)
    run.sub.wait_for(lambda: len(steps_of(run, start.episode_id)) >= 3)
    reply = run.cmd.send(EndEpisode(label="success"))
    assert reply.ok and reply.mode == "await_reset"
    end = run.sub.wait_for(lambda: run.sub.events("end"))[0]
    assert end.reason == "operator_label" and end.outcome == "success" and end.terminated
    assert end.operator == "ann"  # the episode's operator: who started it
    assert end.final_state is not None and len(end.final_state) == 17
    steps = steps_of(run, start.episode_id)
    assert end.num_steps == len(steps)
    assert end.last_step_seq == steps[-1].msg.seq
    seqs = [d.msg.seq for d in run.sub.get("step")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "step seq must be consecutive"
    assert [d.msg.step for d in steps] == list(range(len(steps)))
    human = [d for d in steps if d.msg.action_source == "human"]
    assert human and human[0].msg.human_action[0] == pytest.approx(0.5)
    assert all(d.msg.policy_action is not None for d in steps), (
        "proposal recorded while human drives"
    )
    assert set(steps[0].images()) == {"front", "wrist"}
    assert steps[0].images()["front"].shape == (96, 96, 3)
    # the episode end carries the final observation's frames
    end_decoded = next(d for d in run.sub.get("episode") if d.msg.event == "end")
    assert set(end_decoded.images()) == {"front", "wrist"}
    # relabel a finished episode
    assert run.cmd.send(LabelEpisode(episode_id=start.episode_id, label="failure")).ok
    assert not run.cmd.send(LabelEpisode(episode_id="nope", label="failure")).ok
    # reset done starts the next episode of the same kind
    reply = run.cmd.send(ResetDone())
    assert reply.ok and reply.mode == "teleop"
    starts = run.sub.wait_for(lambda: len(run.sub.events("start")) >= 2 and run.sub.events("start"))
    assert starts[1].episode_kind == "demo" and starts[1].episode_id != start.episode_id


def test_rollout_with_expert_ends_on_success(run_bridge) -> None:
    run = run_bridge(bridge_settings(rate_hz=50.0))
    reply = run.cmd.send(StartRollout())
    assert reply.ok and reply.mode == "rollout", reply.reason
    end = run.sub.wait_for(lambda: run.sub.events("end"), timeout=10)[0]
    assert end.reason == "success" and end.terminated and not end.truncated
    steps = [d.msg for d in run.sub.get("step")]
    assert steps[-1].success and steps[-1].terminated and steps[-1].reward == 1.0
    assert all(s.action_source == "policy" for s in steps)
    assert steps[0].policy_info.proposal == "expert"
    assert run.cmd.send(Ping()).mode == "await_reset"


def test_time_limit_truncates(run_bridge) -> None:
    run = run_bridge(bridge_settings(rate_hz=50.0, horizon=5))
    assert run.cmd.send(StartDemo()).ok
    end = run.sub.wait_for(lambda: run.sub.events("end"), timeout=5)[0]
    assert end.reason == "time_limit" and end.truncated and not end.terminated
    assert end.num_steps == 5
    steps = [d.msg for d in run.sub.get("step")]
    assert steps[-1].truncated and not steps[-1].terminated
    assert all(s.action_source == "hold" for s in steps)


def test_label_while_awaiting_reset_applies_to_the_episode_that_ended(run_bridge) -> None:
    """An episode that hit the time limit is labelled from await_reset with the same
    success/failure/discard commands used during it; the status reports the limit."""
    run = run_bridge(bridge_settings(rate_hz=50.0, horizon=5))
    status = run.sub.wait_for(run.sub.last_status)
    assert status.horizon == 5 and len(status.ee_quat) == 4
    assert not run.cmd.send(EndEpisode(label="success")).ok  # idle: nothing ended yet
    assert run.cmd.send(StartDemo()).ok
    end = run.sub.wait_for(lambda: run.sub.events("end"), timeout=5)[0]
    assert end.reason == "time_limit" and end.outcome is None
    reply = run.cmd.send(EndEpisode(label="success", operator="ann"))
    assert reply.ok and reply.mode == "await_reset", reply.reason
    label = run.sub.wait_for(lambda: run.sub.events("label"))[0]
    assert label.episode_id == end.episode_id and label.outcome == "success"
    assert label.operator == "ann"


def test_illegal_transitions_are_refused_with_a_reason(run_bridge) -> None:
    run = run_bridge(expert=False)
    for body in (TakeOver(), HandBack(), ResetDone(), ClearEStop(), EndEpisode(label="success")):
        reply = run.cmd.send(body)
        assert not reply.ok and reply.mode == "idle"
        assert "not allowed in mode idle" in reply.reason
    reply = run.cmd.send(StartRollout())
    assert not reply.ok and "no policy" in reply.reason
    reply = run.cmd.send(teleop([0.0] * 7))
    assert not reply.ok and "mode is idle" in reply.reason
    reply = run.cmd.send(Ping(), robot_id="other-robot")
    assert not reply.ok and "other-robot" in reply.reason


def test_estop_latch(run_bridge) -> None:
    run = run_bridge()
    assert run.cmd.send(StartDemo()).ok
    reply = run.cmd.send(EStop(reason="hand in workspace"))
    assert reply.ok and reply.mode == "estop"
    end = run.sub.wait_for(lambda: run.sub.events("end"))[0]
    assert end.reason == "safety_stop" and end.truncated
    for body in (StartDemo(), StartRollout(), ResetDone(), TakeOver()):
        assert not run.cmd.send(body).ok
    status = run.sub.wait_for(lambda: (s := run.sub.last_status()) and s.mode == "estop" and s)
    assert "hand in workspace" in status.estop_reason
    assert any(e.kind == "estop" for e in status.safety_events)
    assert run.cmd.send(EStop()).mode == "estop"  # stays latched
    reply = run.cmd.send(ClearEStop())
    assert reply.ok and reply.mode == "idle"
    assert run.cmd.send(StartDemo()).ok


def test_stale_teleop_is_not_applied(run_bridge) -> None:
    run = run_bridge(bridge_settings(rate_hz=20.0, watchdog_s=0.15))
    assert run.cmd.send(StartDemo()).ok
    assert run.cmd.send(teleop([1.0, 0, 0, 0, 0, 0, 1.0])).ok
    time.sleep(0.6)
    steps = [d.msg for d in run.sub.get("step")]
    human = [s for s in steps if s.action_source == "human"]
    hold = [s for s in steps if s.action_source == "hold"]
    assert 1 <= len(human) <= 4, "the one action may only apply within the watchdog time"
    assert len(hold) >= 5
    last = hold[-1]
    assert last.action[:6] == [0.0] * 6 and last.action[6] == 1.0, "hold keeps the gripper closed"
    # the arm did not move during the hold
    assert hold[-1].state[:3] == pytest.approx(hold[-2].state[:3])
    status = run.sub.wait_for(
        lambda: (
            (s := run.sub.last_status())
            and any(e.kind == "stale_command" for e in s.safety_events)
            and s
        )
    )
    assert status.mode == "teleop"


class Drift:
    """A policy that never finishes the task: creeps along -y."""

    def act(self, obs):
        return np.array([0, -0.1, 0, 0, 0, 0, -1.0]), {"proposal": "rl"}


def test_take_over_starts_from_the_measured_pose(run_bridge) -> None:
    run = run_bridge(bridge_settings(rate_hz=20.0, watchdog_s=0.3))
    run.bridge.policy.load(Drift(), version=7)  # swapped in from this (another) thread
    assert run.cmd.send(StartRollout()).ok
    time.sleep(0.2)
    reply = run.cmd.send(TakeOver(operator="bob"))
    assert reply.ok and reply.mode == "intervention"
    n_before = len(run.sub.get("step"))
    for _ in range(5):
        assert run.cmd.send(teleop([0, 0, 0, 0, 0, 0, -1.0])).ok
        time.sleep(0.04)
    steps = [d.msg for d in run.sub.get("step")][n_before:]
    human = [s for s in steps if s.action_source == "human"]
    assert human and all(s.intervention for s in human)
    # zero teleop deltas: the pose measured at the take-over is held exactly (no jump)
    pos = [np.array(s.state[:3]) for s in human]
    assert all(np.allclose(p, pos[0]) for p in pos)
    time.sleep(0.5)  # operator goes quiet: control returns to the policy
    late = [d.msg for d in run.sub.get("step")][-3:]
    assert all(s.action_source == "policy" and not s.intervention for s in late)
    assert late[-1].policy_info.weights_version == 7
    reply = run.cmd.send(HandBack())
    assert reply.ok and reply.mode == "rollout"


def test_a_limit_held_for_many_ticks_is_logged_once(run_bridge, caplog) -> None:
    """Pushing against the workspace edge for 3 s at 20 Hz: one warning, not 60."""
    run = run_bridge(bridge_settings(rate_hz=20.0))
    assert run.cmd.send(StartDemo()).ok
    deadline = time.monotonic() + 3.0
    with caplog.at_level(logging.WARNING, logger="robot_bridge.bridge"):
        while time.monotonic() < deadline:
            run.cmd.send(teleop([1.0, 0, 0, 0, 0, 0, 1.0]))  # full speed forward, held
            time.sleep(0.04)
        clipped = run.sub.wait_for(
            lambda: (
                (s := run.sub.last_status()) and any(e.kind == "workspace" for e in s.safety_events)
            )
        )
    assert clipped
    lines = [r.getMessage() for r in caplog.records if "safety: workspace" in r.getMessage()]
    assert len(lines) == 1, lines


def test_every_estop_is_logged(run_bridge, caplog) -> None:
    run = run_bridge(bridge_settings(rate_hz=20.0))
    with caplog.at_level(logging.WARNING, logger="robot_bridge.bridge"):
        for reason in ("first", "second", "third"):  # well within one throttle period
            assert run.cmd.send(EStop(reason=reason)).ok
            assert run.cmd.send(ClearEStop()).ok
    lines = [r.getMessage() for r in caplog.records if "safety: estop" in r.getMessage()]
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["first", "second", "third"], lines
