"""The scripted operator's uncertainty gate: with ``--take-over-unsure`` it takes over a
rollout once the policy's recent uncertainty reaches the threshold, and not without it.

The real server under uvicorn, the real operator (``ScriptedOperator`` over its WebSockets)
and a stand-in bridge (``FakeBridge``) whose rollout steps carry the uncertainty the test
chooses: calm for six steps, then unsure.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from app_helpers import PASSWORD, LiveServer, make_settings, wait_until

from server.app import create_app
from server.fake_bridge import FakeBridge
from tandem.cli.operator.gate import UnsureGate
from tandem.cli.operator.link import ServerLink
from tandem.cli.operator.script import EpisodeReport, OperatorPlan, ScriptedOperator
from tandem.messages import ActionSource, ControlMode, EpisodeKind, PolicyInfo, StepRecord
from teleop.emulated_pad import EmulatedPad

pytestmark = pytest.mark.timeout(60)
UNSURE = [0.1] * 6 + [0.9] * 10  # threshold 0.5 over 3 steps: reached at step 7
EPISODE = "ep-unsure"


def test_the_gate_fires_once_the_recent_mean_reaches_the_threshold() -> None:
    gate = UnsureGate(0.5, 3)
    # Steps without a usable value are skipped: (0.1, 0.9, 0.2) = 0.4 stays under 0.5.
    assert [gate.see(u) for u in [0.1, 0.9, None, "x", -1.0, float("inf"), 0.2]] == [None] * 7
    assert gate.see(0.9) is not None  # (0.9, 0.2, 0.9) = 0.67
    gate.reset()
    assert gate.see(0.9) is None  # a new episode starts with an empty window
    with pytest.raises(ValueError, match="finite number >= 0"):
        UnsureGate(float("nan"), 3)
    with pytest.raises(ValueError, match="window must be >= 1"):
        UnsureGate(0.5, 0)


def test_a_window_of_values_over_the_threshold_gives_the_reason() -> None:
    gate = UnsureGate(0.5, 2)
    assert gate.see(0.4) is None
    assert gate.see(0.7) == "policy unsure: mean uncertainty 0.550 over the last 2 steps >= 0.5"


class FakeRobot:
    """Status every 50 ms; on ``start_rollout`` one episode of steps with ``UNSURE``."""

    def __init__(self, bridge: FakeBridge) -> None:
        self.bridge = bridge
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._status, self._run)]

    def __enter__(self) -> FakeRobot:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)

    def _status(self) -> None:
        while not self.stop.is_set():
            episode = EPISODE if self.bridge.mode is not ControlMode.IDLE else None
            self.bridge.publish_status(robot="sim:lift", policy_ready=True, episode_id=episode)
            time.sleep(0.05)

    def _run(self) -> None:
        if not self.bridge.wait_for("start_rollout", timeout=30):
            return
        self.bridge.publish_episode(EPISODE, "start")
        for step, uncertainty in enumerate(UNSURE):
            human = self.bridge.mode is ControlMode.INTERVENTION
            self.bridge.publish(_step(step, uncertainty, human))
            time.sleep(0.05)
        self.bridge.mode = ControlMode.AWAIT_RESET
        self.bridge.publish_episode(EPISODE, "end", reason="success", num_steps=len(UNSURE))


def _step(step: int, uncertainty: float, human: bool) -> StepRecord:
    return StepRecord(
        robot_id="robot0", episode_id=EPISODE, episode_kind=EpisodeKind.ROLLOUT, step=step,
        mode=ControlMode.INTERVENTION if human else ControlMode.ROLLOUT,
        state=[0.5, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0, 1.0] + [0.0] * 13, action=[0.0] * 7,
        policy_action=[0.0] * 7, action_source=ActionSource.HUMAN if human else ActionSource.POLICY,
        intervention=human, success=step == len(UNSURE) - 1, t_obs=time.monotonic(),
        policy_info=PolicyInfo(proposal="rl", uncertainty=uncertainty),
    )  # fmt: skip


@pytest.mark.parametrize("threshold", [0.5, None])
def test_the_operator_takes_over_when_the_policy_is_unsure(
    tmp_path: Path, bridge: FakeBridge, threshold: float | None
) -> None:
    settings = make_settings(tmp_path, [bridge])
    app = create_app(settings)
    auth = app.state.tandem.store.auth
    token = auth.issue_token(auth.create_operator("op", "operator", PASSWORD).id, 3600)
    plan = OperatorPlan(
        demos=0, rollouts=1, take_over_after=100, stall_steps=100, event_timeout_s=10,
        unsure_threshold=threshold, unsure_window=3,
    )  # fmt: skip

    async def operate(url: str) -> list[EpisodeReport]:
        async with ServerLink(url, token) as link:
            pad = EmulatedPad(settings.teleop)
            return await ScriptedOperator(link, pad, plan, "op", (0.05, 0.2)).run()

    with LiveServer(app) as live, FakeRobot(bridge):
        wait_until(lambda: app.state.tandem.link.registry.bridges[0].status, 10, "the fake status")
        (report,) = asyncio.run(operate(f"http://{live.base}"))
    took = bridge.wait_for("take_over", timeout=0.1)
    if threshold is None:
        assert took == [] and report.take_over_step is None and report.human_steps == 0
        return
    assert len(took) == 1 and report.take_over_step == 7, report
    assert report.take_over_reason is not None
    assert report.take_over_reason.startswith("policy unsure: mean uncertainty 0.633")
    assert report.human_steps > 0 and report.success
