"""What the scripted operator does: demos, rollouts, take-overs, resets and labels.

It reacts to the telemetry stream the way a person watching the dashboard
would. On each step of an episode it drives (demos, interventions) or watches
the policy (rollouts); a policy that has not succeeded after ``take_over_after``
steps, or whose hand has hardly moved for ``stall_steps`` steps, or (with
``unsure_threshold``) that says it is unsure (``gate.UnsureGate``), is taken over
and the expert finishes the episode. Episodes that end without success are
labelled ``failure``; between episodes it signals ``reset_done`` (the simulator
resets the scene itself). After every ``eval_every`` rollouts it runs an
evaluation batch of ``eval_episodes`` episodes (``start_eval``): it only watches
them, since a take-over would make them failures. While it waits it keeps
sending idle pad snapshots, as a connected pad does, so its control lease does
not expire.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tandem.cli.operator.gate import UnsureGate
from tandem.cli.operator.hands import ExpertHands
from tandem.cli.operator.link import LinkError, ServerLink
from tandem.messages.control import CommandName
from teleop.emulated_pad import EmulatedPad

log = logging.getLogger(__name__)

Kind = Literal["demo", "rollout", "evaluation"]
START: dict[Kind, CommandName] = {"demo": "start_demo", "rollout": "start_rollout"}
ACTIVE_MODE: dict[Kind, str] = {"demo": "teleop", "rollout": "rollout"}
BUSY = frozenset({"teleop", "rollout", "intervention"})


@dataclass(frozen=True)
class OperatorPlan:
    """How many episodes of each kind, and when to lose patience with the policy."""

    demos: int = 5
    rollouts: int = 3
    take_over_after: int = 60
    stall_steps: int = 15
    stall_distance_m: float = 0.01
    give_up_steps: int = 30
    event_timeout_s: float = 15.0
    policy_timeout_s: float = 900.0
    eval_every: int = 0  # an evaluation batch after every this many rollouts; 0: never
    eval_episodes: int = 10
    eval_timeout_s: float = 1800.0  # one batch, start to end
    unsure_threshold: float | None = None  # take over when the policy is unsure; None: never
    unsure_window: int = 5  # steps the unsure mean covers


@dataclass
class EpisodeReport:
    """One episode as the operator saw it (the database has the authoritative record)."""

    episode_id: str
    kind: Kind
    steps: int = 0
    human_steps: int = 0
    success: bool = False
    outcome: str | None = None
    end_reason: str | None = None
    take_over_step: int | None = None
    take_over_reason: str | None = None
    labelled: str | None = None
    weights_versions: list[int] = field(default_factory=list)
    result: str | None = None  # autonomous_success, assisted_success or failure (the server's)
    eval_batch: str | None = None


@dataclass
class EvalReport:
    """One evaluation batch as the operator saw it (the server's /api/evals has the record)."""

    after_rollouts: int
    total: int
    batch: str | None = None
    episodes: list[str] = field(default_factory=list)
    successes: int = 0  # autonomous
    weights_versions: list[int] = field(default_factory=list)
    reset_sent_at: int | None = None  # batch progress when reset_done was last sent

    @property
    def success_rate(self) -> float | None:
        return self.successes / len(self.episodes) if self.episodes else None


class ScriptedOperator:
    """Drives one robot through ``link`` with the sim expert's hands and an emulated pad."""

    def __init__(
        self, link: ServerLink, pad: EmulatedPad, plan: OperatorPlan, name: str,
        limits: tuple[float, float],
    ) -> None:  # fmt: skip
        self.link, self.pad, self.plan, self.name = link, pad, plan, name
        self.limits = limits
        self.status: dict[str, Any] = {}
        self.robot_id: str | None = None
        self.hands: ExpertHands | None = None
        self.reports: list[EpisodeReport] = []
        self.evals: list[EvalReport] = []
        self.gate = (
            None
            if plan.unsure_threshold is None
            else UnsureGate(plan.unsure_threshold, plan.unsure_window)
        )

    async def run(self) -> list[EpisodeReport]:
        """Claim the robot, record the demos, then run the rollouts."""
        await self._find_robot()
        await self.link.claim(self.name)
        self.pad.reset()  # the server resets its mapper when it grants the lease
        log.info("claimed %s (%s) as %r", self.robot_id, self.status.get("robot"), self.name)
        for i in range(self.plan.demos):
            await self._episode("demo", i + 1, self.plan.demos)
        if self.plan.rollouts:
            await self._wait_for_policy()
        for i in range(self.plan.rollouts):
            await self._episode("rollout", i + 1, self.plan.rollouts)
            if self.plan.eval_every and (i + 1) % self.plan.eval_every == 0:
                await self._eval_batch(i + 1)
        return self.reports

    # ------------------------------------------------------------------ events
    async def _next(self, *, idle: bool = False) -> dict[str, Any]:
        """The next telemetry event of our robot (state events update ``status``)."""
        while True:
            event = await self.link.next_event(self.plan.event_timeout_s)
            if self.robot_id is not None and event.get("robot_id") not in (None, self.robot_id):
                continue
            if event.get("type") == "state":
                self.status = event
            if idle:
                await self.link.send_pad(self.pad.idle())
            return event

    async def _find_robot(self) -> None:
        self.robot_id = self.link.robot  # None: the first robot that reports its state
        while not self.status:
            await self._next()
        self.robot_id = str(self.status["robot_id"])
        self.hands = ExpertHands(str(self.status["robot"]), *self.limits)

    async def _wait_for_policy(self) -> None:
        deadline = time.monotonic() + self.plan.policy_timeout_s
        if not self.status.get("policy_ready"):
            log.info("waiting for the learner's first policy before the rollouts")
        while not self.status.get("policy_ready"):
            if time.monotonic() > deadline:
                raise LinkError(f"no policy loaded within {self.plan.policy_timeout_s} s")
            await self._next(idle=True)
        log.info("policy ready: weights v%s", self.status.get("weights_version"))

    # ------------------------------------------------------------------ episodes
    async def _episode(self, kind: Kind, n: int, total: int) -> EpisodeReport:
        episode_id = await self._begin(kind)
        log.info("%s %d/%d: episode %s", kind, n, total, episode_id)
        report = EpisodeReport(episode_id, kind)
        self.reports.append(report)
        await self._follow(report)
        if not report.success and report.outcome is None:
            await self._label(report, "failure")
        took = report.take_over_step
        log.info(
            "%s %s ended (%s) after %d steps, %d driven by the operator%s",
            kind, episode_id, report.end_reason, report.steps, report.human_steps,
            "" if took is None else f", taken over at step {took}",
        )  # fmt: skip
        return report

    async def _begin(self, kind: Kind) -> str:
        """Start an episode of ``kind``: ``reset_done`` after one of the same kind, else start."""
        mode = await self._settled_mode()
        last = self.reports[-1].kind if self.reports else None
        if mode == "estop":
            raise LinkError(f"the robot is e-stopped ({self.status.get('estop_reason')})")
        if mode not in ("idle", "await_reset"):
            raise LinkError(f"an episode is already running (mode {mode}); end it first")
        self._drain()
        ack = None
        if mode == "await_reset" and last == kind:
            ack = await self.link.command("reset_done", "scene reset (scripted operator)")
        if ack is None or (ack.ok and ack.mode != ACTIVE_MODE[kind]):
            ack = await self.link.command(START[kind])
        if not ack.ok:
            raise LinkError(f"{START[kind]} refused: {ack.reason}")
        while True:
            event = await self._next()
            if event.get("type") == "episode_start" and event.get("episode_kind") == kind:
                return str(event["episode_id"])

    async def _settled_mode(self) -> str | None:
        """The robot's mode once the status has caught up with the end of the last episode."""
        deadline = time.monotonic() + self.plan.event_timeout_s
        while self.status.get("mode") in BUSY:
            if time.monotonic() > deadline:
                break
            await self._next(idle=True)
        return self.status.get("mode")

    def _drain(self) -> None:
        while not self.link.events.empty():
            event = self.link.events.get_nowait()
            if event.get("type") == "state" and event.get("robot_id") == self.robot_id:
                self.status = event

    async def _follow(self, report: EpisodeReport) -> None:
        """React to every step of the episode until its summary arrives."""
        human = report.kind == "demo"
        if self.gate is not None:
            self.gate.reset()
        window: deque[np.ndarray] = deque(maxlen=self.plan.stall_steps)
        driven: deque[np.ndarray] = deque(maxlen=self.plan.give_up_steps)
        gave_up = False
        while True:
            event = await self._next()
            if event.get("episode_id") != report.episode_id:
                continue
            if event["type"] == "episode_summary":
                _summarise(report, event)
                return
            if event["type"] != "rollout":
                continue
            report.steps += 1
            version = event.get("weights_version") if event.get("source") == "policy" else None
            if version is not None and version not in report.weights_versions:
                report.weights_versions.append(int(version))
            if not human:
                human = await self._watch(report, event, window)
            if human and not gave_up:
                report.human_steps += event.get("source") == "human"
                gave_up = await self._give_up(event, driven)
                if not gave_up:
                    await self._drive(event)

    # ------------------------------------------------------------------ evaluation
    async def _eval_batch(self, after: int) -> EvalReport:
        """Start a batch and watch it to the end: no take-over (it would be a failure)."""
        n = self.plan.eval_episodes
        mode = await self._settled_mode()
        if mode not in ("idle", "await_reset"):
            raise LinkError(f"cannot start an evaluation batch in mode {mode}")
        self._drain()
        why = f"evaluation after {after} rollouts (scripted operator)"
        ack = await self.link.command("start_eval", why, episodes=n)
        if not ack.ok:
            raise LinkError(f"start_eval refused: {ack.reason}")
        batch = EvalReport(after_rollouts=after, total=n)
        self.evals.append(batch)
        deadline = time.monotonic() + self.plan.eval_timeout_s
        current: EpisodeReport | None = None
        while not self._eval_over(batch, current):
            if time.monotonic() > deadline:
                raise LinkError(f"evaluation batch not done within {self.plan.eval_timeout_s} s")
            current = await self._on_eval_event(batch, current, await self._next(idle=True))
        log.info(
            "evaluation after %d rollouts (%s): %d/%d autonomous successes, weights %s",
            after, batch.batch, batch.successes, len(batch.episodes), batch.weights_versions,
        )  # fmt: skip
        return batch

    def _eval_over(self, batch: EvalReport, current: EpisodeReport | None) -> bool:
        progress = self.status.get("eval") or {}
        ours = batch.batch is not None and progress.get("batch") == batch.batch
        finished = ours and not progress.get("running")
        return finished and current is None and len(batch.episodes) >= int(progress.get("done", 0))

    async def _on_eval_event(
        self, batch: EvalReport, current: EpisodeReport | None, event: dict[str, Any]
    ) -> EpisodeReport | None:
        """Track the batch's episodes; the episode open after ``event``."""
        kind = event.get("type")
        if kind == "episode_start" and event.get("episode_kind") == "evaluation":
            batch.batch = batch.batch or event.get("eval_batch")
            report = EpisodeReport(str(event["episode_id"]), "evaluation")
            report.eval_batch = event.get("eval_batch")
            self.reports.append(report)
            return report
        if kind == "state":
            await self._eval_reset(batch, event)
        if current is None or event.get("episode_id") != current.episode_id:
            return current
        if kind == "rollout":
            current.steps += 1
            version = event.get("weights_version")
            for seen in (current.weights_versions, batch.weights_versions):
                if version is not None and int(version) not in seen:
                    seen.append(int(version))
            await self.link.send_pad(self.pad.idle())
        elif kind == "episode_summary":
            _summarise(current, event)
            batch.episodes.append(current.episode_id)
            batch.successes += current.result == "autonomous_success"
            return None
        return current

    async def _eval_reset(self, batch: EvalReport, state: dict[str, Any]) -> None:
        """A robot that does not reset itself waits for reset_done between episodes."""
        progress = state.get("eval") or {}
        waiting = state.get("mode") == "await_reset" and progress.get("running")
        if not waiting or progress.get("auto_reset") or progress.get("batch") != batch.batch:
            return
        if batch.reset_sent_at == progress.get("done"):
            return
        batch.reset_sent_at = progress.get("done")
        ack = await self.link.command("reset_done", "scene reset (scripted operator)")
        if not ack.ok:
            log.warning("reset_done refused during the evaluation: %s", ack.reason)

    async def _give_up(self, step: dict[str, Any], driven: deque[np.ndarray]) -> bool:
        """End the episode as a failure when the expert's hand is stuck (e.g. a wrist wound
        up against its joint limit by the policy), as a person would, instead of waiting
        for the time limit. True once the bridge has accepted the ``failure``."""
        driven.append(_state(step)[:7])
        if len(driven) < self.plan.give_up_steps or not _stuck(driven):
            return False
        reason = f"the operator could not make progress in {len(driven)} steps"
        ack = await self.link.command("failure", reason)
        log.info("gave up on %s at step %s: %s", step["episode_id"], step["step"], reason)
        return ack.ok

    async def _drive(self, step: dict[str, Any]) -> None:
        assert self.hands is not None
        action = self.hands.act(_state(step), _applied(step))
        for snap in self.pad.drive(action):
            await self.link.send_pad(snap)

    async def _watch(
        self, report: EpisodeReport, step: dict[str, Any], window: deque[np.ndarray]
    ) -> bool:
        """Watch the policy; take over when it stalls. True once the operator drives."""
        await self.link.send_pad(self.pad.idle())
        window.append(_state(step)[:3])
        reason = self._stalled(int(step["step"]), window)
        if reason is None and self.gate is not None:
            reason = self.gate.see(step.get("uncertainty"))
        if reason is None:
            return False
        ack = await self.link.command("take_over", reason)
        if not ack.ok:
            log.warning("take_over refused: %s", ack.reason)
            return False
        report.take_over_step, report.take_over_reason = int(step["step"]), reason
        log.info("took over at step %d: %s", step["step"], reason)
        return True

    def _stalled(self, step: int, window: deque[np.ndarray]) -> str | None:
        if step + 1 >= self.plan.take_over_after:
            return f"no success after {step + 1} policy steps"
        if len(window) < self.plan.stall_steps:
            return None
        moved = max(float(np.linalg.norm(p - window[0])) for p in window)
        if moved < self.plan.stall_distance_m:
            return f"policy stalled: the hand moved {moved * 1000:.0f} mm in {len(window)} steps"
        return None

    async def _label(self, report: EpisodeReport, outcome: str) -> None:
        try:
            await self.link.http(
                "POST", f"/api/episodes/{report.episode_id}/label", {"outcome": outcome}
            )
        except LinkError as exc:
            log.warning("could not label %s %s: %s", report.episode_id, outcome, exc)
            return
        report.labelled = outcome


def _summarise(report: EpisodeReport, summary: dict[str, Any]) -> None:
    """Copy an ``episode_summary``'s outcome into the report (evaluations: autonomous only)."""
    report.result = summary.get("result")
    report.success = bool(summary["success"])
    if report.kind == "evaluation":
        report.success = report.result == "autonomous_success"
    report.outcome, report.end_reason = summary.get("outcome"), summary.get("reason")


def _stuck(poses: deque[np.ndarray], distance_m: float = 0.005, angle_rad: float = 0.05) -> bool:
    """The hand stayed within ``distance_m`` and ``angle_rad`` of its first pose."""
    first = poses[0]
    for pose in poses:
        turned = 2.0 * np.arccos(min(1.0, abs(float(np.dot(pose[3:7], first[3:7])))))
        if np.linalg.norm(pose[:3] - first[:3]) > distance_m or turned > angle_rad:
            return False
    return True


def _state(step: dict[str, Any]) -> np.ndarray:
    """The step's observed state; a telemetry message without one is a clear error."""
    return _vector(step, "state", minimum=17)


def _applied(step: dict[str, Any]) -> np.ndarray:
    return _vector(step, "action", minimum=7)


def _vector(step: dict[str, Any], key: str, minimum: int) -> np.ndarray:
    try:
        value = np.asarray(step[key], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        value = np.empty(0)
    if value.ndim != 1 or len(value) < minimum or not np.all(np.isfinite(value)):
        raise LinkError(
            f"telemetry step {step.get('step')} of {step.get('episode_id')} has no usable "
            f"{key!r} (a server older than this operator sends none): {step.get(key)!r:.80}"
        )
    return value
