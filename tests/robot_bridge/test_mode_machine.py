"""The mode machine and the per-tick action choice (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_bridge.modes import ModeMachine, choose_action
from tandem.messages import ControlMode as M
from tandem.messages import EpisodeKind

pytestmark = pytest.mark.timeout(60)

READY = {"policy_ready": True, "link_ok": True}


def at(mode: M) -> ModeMachine:
    machine = ModeMachine(wall=lambda: 5.0)
    machine.mode = mode
    return machine


LEGAL = [
    ("start_demo", M.IDLE, M.TELEOP),
    ("start_demo", M.AWAIT_RESET, M.TELEOP),
    ("start_rollout", M.IDLE, M.ROLLOUT),
    ("take_over", M.ROLLOUT, M.INTERVENTION),
    ("hand_back", M.INTERVENTION, M.ROLLOUT),
    ("end_episode", M.TELEOP, M.AWAIT_RESET),
    ("end_episode", M.INTERVENTION, M.AWAIT_RESET),
    ("clear_estop", M.ESTOP, M.IDLE),
    ("estop", M.ROLLOUT, M.ESTOP),
    ("estop", M.IDLE, M.ESTOP),
]


@pytest.mark.parametrize(("command", "src", "dst"), LEGAL)
def test_legal_transitions(command: str, src: M, dst: M) -> None:
    verdict = at(src).check(command, **READY)
    assert verdict.ok and verdict.target is dst


ILLEGAL = [
    ("take_over", M.IDLE), ("take_over", M.TELEOP), ("hand_back", M.ROLLOUT),
    ("start_demo", M.TELEOP), ("start_rollout", M.ROLLOUT), ("reset_done", M.IDLE),
    ("end_episode", M.IDLE), ("end_episode", M.AWAIT_RESET), ("clear_estop", M.IDLE),
    ("start_demo", M.ESTOP), ("reset_done", M.ESTOP),
]  # fmt: skip


@pytest.mark.parametrize(("command", "src"), ILLEGAL)
def test_illegal_transitions_have_a_reason(command: str, src: M) -> None:
    verdict = at(src).check(command, **READY)
    assert not verdict.ok and verdict.target is None
    assert command in verdict.reason and src.value in verdict.reason


def test_guards() -> None:
    assert "no policy" in at(M.IDLE).check("start_rollout", policy_ready=False, link_ok=True).reason
    assert "link" in at(M.IDLE).check("start_demo", policy_ready=True, link_ok=False).reason
    assert "link" in at(M.ESTOP).check("clear_estop", policy_ready=True, link_ok=False).reason
    assert not at(M.IDLE).check("fly", **READY).ok


@pytest.mark.parametrize(
    ("kind", "next_on_reset", "ready", "target"),
    [
        (EpisodeKind.DEMO, True, False, M.TELEOP),
        (EpisodeKind.ROLLOUT, True, True, M.ROLLOUT),
        (EpisodeKind.ROLLOUT, True, False, M.IDLE),
        (EpisodeKind.DEMO, False, True, M.IDLE),
    ],
)
def test_reset_done_starts_the_next_episode(kind, next_on_reset, ready, target) -> None:
    verdict = at(M.AWAIT_RESET).check(
        "reset_done", policy_ready=ready, link_ok=True, last_kind=kind, next_on_reset=next_on_reset
    )
    assert verdict.ok and verdict.target is target


def test_transitions_are_logged_with_reasons() -> None:
    machine = ModeMachine(wall=lambda: 42.0)
    machine.go(M.TELEOP, "start_demo by ann")
    machine.go(M.AWAIT_RESET, "episode ended: success")
    assert machine.mode is M.AWAIT_RESET
    assert [(t.from_mode, t.to_mode) for t in machine.history] == [
        (M.IDLE, M.TELEOP), (M.TELEOP, M.AWAIT_RESET),
    ]  # fmt: skip
    assert machine.last is not None and machine.last.reason == "episode ended: success"
    assert machine.last.t_wall == 42.0


HOLD = np.array([0, 0, 0, 0, 0, 0, 1.0])
POLICY = np.full(7, 0.3)
HUMAN = np.full(7, -0.4)


def test_choose_action() -> None:
    c = choose_action(M.TELEOP, POLICY, HUMAN, HOLD)
    assert c.source == "human" and not c.intervention and c.action is HUMAN
    assert choose_action(M.TELEOP, POLICY, None, HOLD).source == "hold"
    assert choose_action(M.ROLLOUT, POLICY, HUMAN, HOLD).source == "policy"
    assert choose_action(M.ROLLOUT, None, None, HOLD).source == "hold"
    c = choose_action(M.INTERVENTION, POLICY, HUMAN, HOLD)
    assert c.source == "human" and c.intervention
    c = choose_action(M.INTERVENTION, POLICY, None, HOLD)  # stale operator: policy drives
    assert c.source == "policy" and not c.intervention
