"""Stale teleop is never replayed (issue 17, defect 5): actions age from the operator's
input time, a neutral input clears the pending action, and nothing moves after the
deadman is released, whether the sender or the bridge was frozen."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tandem import wire
from tandem.messages import Command, StartDemo, TeleopAction
from tests.robot_bridge.conftest import Running

pytestmark = pytest.mark.timeout(60)
MOVE = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]
WATCHDOG_S = 0.25  # BridgeSettings.watchdog_s default


def act(action: list[float] | None, age: float = 0.0) -> TeleopAction:
    """An action the operator made ``age`` seconds ago (sent now)."""
    return TeleopAction(action=action, t_input=time.monotonic() - age)


def human_steps(run: Running) -> int:
    return sum(d.msg.action_source == "human" for d in run.sub.get("step"))  # type: ignore[attr-defined]


def demo(run_bridge: Any) -> Running:
    run = run_bridge()
    assert run.cmd.send(StartDemo()).ok
    run.sub.wait_for(lambda: len(run.sub.get("step")) >= 2)
    return run


def test_a_stale_teleop_action_is_refused_and_does_not_move(run_bridge) -> None:
    run = demo(run_bridge)
    reply = run.cmd.send(act(MOVE, age=1.0))
    assert not reply.ok and "stale" in reply.reason, reply.reason
    ee = run.bridge.status().ee_pos
    time.sleep(0.5)
    assert human_steps(run) == 0
    assert run.bridge.status().ee_pos == pytest.approx(ee, abs=1e-6)
    assert run.cmd.send(act(MOVE, age=0.05)).ok  # a fresh one is taken
    run.sub.wait_for(lambda: human_steps(run) > 0)


def test_a_neutral_input_clears_the_pending_action(run_bridge) -> None:
    run = demo(run_bridge)
    assert run.cmd.send(act(MOVE)).ok
    run.sub.wait_for(lambda: human_steps(run) > 0)
    reply = run.cmd.send(act(None))
    assert reply.ok, reply.reason
    before = human_steps(run)
    time.sleep(WATCHDOG_S + 0.2)  # the cleared action would still be fresh for a while
    assert human_steps(run) <= before + 1  # at most a step already in flight
    assert not any(e.kind == "stale_command" for e in run.bridge.status().safety_events)


def test_no_motion_after_release_when_the_sender_was_frozen(run_bridge) -> None:
    """A server frozen for 2 s flushes the actions the operator made before releasing."""
    run = demo(run_bridge)
    t0 = time.monotonic()
    assert run.cmd.send(TeleopAction(action=MOVE, t_input=t0)).ok
    time.sleep(2.0)  # frozen; the operator moved until t0 + 0.3, then released
    before = human_steps(run)
    for k in (1, 2, 3):
        reply = run.cmd.send(TeleopAction(action=MOVE, t_input=t0 + 0.1 * k))
        assert not reply.ok and "stale" in reply.reason, reply.reason
    time.sleep(0.5)
    assert human_steps(run) == before


def freeze_next_tick(run: Running, seconds: float) -> float:
    """The next tick stalls ``seconds`` before it runs (a frozen bridge); when it stalled."""
    stalled = threading.Event()
    at: list[float] = []
    tick = run.bridge.tick

    def stalling_tick() -> None:
        if not stalled.is_set():
            at.append(time.monotonic())
            stalled.set()
            time.sleep(seconds)
        tick()

    run.bridge.tick = stalling_tick  # type: ignore[method-assign]
    assert stalled.wait(2.0)
    return at[0]


@pytest.mark.parametrize(
    ("neutral", "freeze_s"), [(True, 0.4), (False, 0.6)], ids=["release sent", "release lost"]
)
def test_no_motion_after_release_when_the_bridge_was_frozen(
    run_bridge, neutral: bool, freeze_s: float
) -> None:
    """Moves made early in a bridge freeze are not replayed after it: the release clears
    them, and if it was lost they are older than the watchdog when the bridge resumes."""
    run = demo(run_bridge)
    frozen_at = freeze_next_tick(run, freeze_s)
    sent = 0
    for _ in range(3):  # the operator moves for 0.1 s, then releases the deadman
        wire.send(run.cmd.sock, Command(body=act(MOVE)))
        sent += 1
        time.sleep(0.03)
    last_move = time.monotonic() - frozen_at
    if neutral:
        wire.send(run.cmd.sock, Command(body=act(None)))
        sent += 1
    replies = [run.cmd.recv() for _ in range(sent)]
    assert time.monotonic() - frozen_at > freeze_s - 0.01, "the bridge was not frozen"
    assert neutral or last_move < freeze_s - WATCHDOG_S - 0.05, "machine too slow to tell"
    time.sleep(WATCHDOG_S + 0.2)
    assert human_steps(run) == 0
    if not neutral:
        assert not any(r.ok for r in replies), [r.reason for r in replies]
