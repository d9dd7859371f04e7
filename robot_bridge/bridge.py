"""The bridge: one control tick at a fixed rate, wiring backend, modes, commands, safety, publisher.

Per tick: answer waiting commands (zero-timeout poll within a budget, e-stops
first), check the robot link,
observe, and in an active episode (teleop, rollout, intervention) choose,
validate and apply one action and publish its ``StepRecord``. Live frames go
out every tick, the status at least every ``status_period_s``. Outside an
episode the robot holds still. See docs/bridge.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import zmq

from robot_bridge import safety
from robot_bridge.backend import RobotBackend
from robot_bridge.cameras import CameraSet
from robot_bridge.command_server import CommandServer, Incoming
from robot_bridge.driver import DriverError
from robot_bridge.modes import ACTIVE, HUMAN_DRIVEN, EvalBatch, ModeMachine, choose_action
from robot_bridge.pacer import Pacer, TimingStats, enable_realtime
from robot_bridge.policy import PolicySlot
from robot_bridge.publisher import Publisher
from robot_bridge.types import RobotState
from tandem import wire
from tandem.clock import LinkClocks
from tandem.logs import Throttle, held_note
from tandem.messages import (
    BridgeStatus,
    Command,
    CommandReply,
    EndEpisode,
    EpisodeEvent,
    EpisodeKind,
    EStop,
    LabelEpisode,
    Outcome,
    Ping,
    SafetyEvent,
    StartEval,
    StepRecord,
    StopEval,
    TeleopAction,
)
from tandem.messages import ControlMode as M
from tandem.settings import BridgeSettings

log = logging.getLogger(__name__)
UNTHROTTLED_SAFETY = frozenset({"estop", "link_lost"})  # always logged, however many come
EndReason = Literal[
    "success", "operator_label", "time_limit", "safety_stop", "take_over", "eval_stopped"
]
PROBE_PERIOD_S = 0.25
RECENT_EPISODES = 200
CAMERA_LOG_PERIOD_S = 60.0


@dataclass
class Episode:
    id: str
    kind: EpisodeKind
    step: int = 0
    last_step_seq: int | None = None
    operator: str | None = None  # who started it
    weights_version: int | None = None  # loaded when it started
    eval_index: int | None = None  # 1-based position in the evaluation batch


class Bridge:
    """Owns the robot backend, the control mode and everything published about them."""

    def __init__(
        self,
        settings: BridgeSettings,
        backend: RobotBackend,
        *,
        policy: PolicySlot | None = None,
        cameras: CameraSet | None = None,
        context: zmq.Context | None = None,
        clock: Callable[[], float] = time.monotonic,
        timing_window: int = 600,
        auto_reset: bool | None = None,
    ) -> None:
        """``auto_reset``: the robot resets itself between evaluation episodes (default:
        true for the simulator and the mock, false for a real arm, which waits for
        the operator's reset_done)."""
        self.s = settings
        self.backend = backend
        self.policy = policy or PolicySlot()
        self.cameras = cameras
        self._ctx = context or zmq.Context.instance()
        self._clock = clock
        self.machine = ModeMachine()
        self.latch = safety.EStopLatch()
        self.teleop: safety.KeepLatest[np.ndarray] = safety.KeepLatest()  # stamped t_input
        self.clocks = LinkClocks()  # sender clock -> ours, per command link
        self.timing = TimingStats(settings.rate_hz, timing_window)
        self.safety_events: deque[SafetyEvent] = deque(maxlen=20)
        self._log_throttle = Throttle(period_s=5.0)
        self.episode: Episode | None = None
        self.recent: OrderedDict[str, EpisodeKind] = OrderedDict()
        self.last_kind: EpisodeKind | None = None
        self.state: RobotState | None = None
        self.auto_reset = resets_itself(backend) if auto_reset is None else auto_reset
        self.eval: EvalBatch | None = None
        self._episodes = 0
        self._gripper_cmd = -1.0
        self._human_fresh = False
        self._next_status = 0.0
        self._next_probe = 0.0
        self._next_camera_log = 0.0
        self._backend_errors = 0
        self._refused_teleop = 0
        self.pub: Publisher | None = None
        self.cmds: CommandServer | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Connect the backend, bind the sockets, start the cameras."""
        self.backend.connect()
        try:
            self.state = self.backend.observe()
        except DriverError as exc:  # the loop observes again every tick
            log.warning("first observation failed: %s", exc)
        self.pub = Publisher(
            self.s.pub_endpoint, self._ctx, hwm=self.s.pub_hwm, jpeg_quality=self.s.jpeg_quality
        )
        self.cmds = CommandServer(self.s.cmd_endpoint, self._ctx)
        if self.cameras is not None:
            self.cameras.start()
        log.info(
            "bridge %s on %s: publishing on %s, commands on %s",
            self.s.robot_id, self.backend.name, self.pub.endpoint, self.cmds.endpoint,
        )  # fmt: skip

    def close(self) -> None:
        if self.eval is not None:
            self.eval.stop("bridge stopped")
        if self.episode is not None:
            self._end_episode("safety_stop", None, terminated=False, truncated=True, final=False)
        for closer in (self.backend.stop, self.backend.close):
            try:
                closer()
            except DriverError as exc:
                log.warning("while closing the backend: %s", exc)
        if self.cameras is not None:
            self.cameras.stop()
        self.policy.close()  # its threads' sockets must be closed before the context goes
        for sock in (self.pub, self.cmds):
            if sock is not None:
                sock.close()

    def run(self, stop: threading.Event, *, realtime: bool = False) -> None:
        """Tick at ``rate_hz`` on absolute deadlines until ``stop`` is set."""
        if realtime:
            enable_realtime(self.s.realtime_priority)
        pacer = Pacer(1.0 / self.s.rate_hz)
        pacer.start()
        while not stop.is_set():
            lateness = pacer.wait()
            t0 = self._clock()
            self.tick()
            work = self._clock() - t0
            self.timing.record(lateness, work, pacer.finish())

    # ----------------------------------------------------------------- one tick
    def tick(self) -> None:
        now = self._clock()
        assert self.cmds is not None and self.pub is not None, "start() first"
        polled = self.cmds.poll()
        for incoming in polled.incoming:
            self._answer(incoming, now)
        if polled.shed:
            self._refuse_shed(polled.shed)
        if self._link_up(now):
            state = self._observe()
            if state is not None:
                if self.episode is not None and self.machine.mode in ACTIVE:
                    self._control(state, now)
                self.pub.frames(self.s.robot_id, state.images, state.t)
        if now >= self._next_status:
            self._publish_status()

    def _link_up(self, now: float) -> bool:
        if self.backend.link_ok:
            return True
        if self.machine.mode is not M.ESTOP:
            self._estop(f"link to {self.backend.name} lost", kind="link_lost")
        if now >= self._next_probe:
            self._next_probe = now + PROBE_PERIOD_S
            return self.backend.probe()
        return False

    def _observe(self) -> RobotState | None:
        try:
            state = self.backend.observe()
        except DriverError as exc:
            self._backend_error(exc)
            return None
        if not np.all(np.isfinite(state.state)):
            self._safety("non_finite", "backend returned a non-finite state; holding")
            return None
        if self.cameras is not None:
            for name, img in self.cameras.latest().items():
                state.images[name] = img.image
        self.state = state
        return state

    def _backend_error(self, exc: DriverError) -> None:
        self._backend_errors += 1
        if self._backend_errors % 50 == 1:
            log.warning("backend error (%d so far): %s", self._backend_errors, exc)

    def _control(self, state: RobotState, now: float) -> None:
        """One step of the active episode: arbitrate, apply safely, publish the step."""
        ep, mode = self.episode, self.machine.mode
        assert ep is not None and self.pub is not None
        # Evaluation episodes are deterministic: no exploration noise (docs/bridge.md).
        explore = ep.kind is not EpisodeKind.EVALUATION
        proposal = self.policy.act(state.policy_input(), explore=explore)
        p_action, p_info = proposal if proposal is not None else (None, None)
        human = self.teleop.fresh(now, self.s.watchdog_s) if mode in HUMAN_DRIVEN else None
        self._watch_teleop(mode, human)
        choice = choose_action(mode, p_action, human, safety.hold_action(self._gripper_cmd))
        try:
            applied = self.backend.apply(choice.action)
        except DriverError as exc:
            self._backend_error(exc)
            return
        for ev in applied.events:
            self._record(ev)
        self._gripper_cmd = float(applied.action[6])
        sig = self.backend.signals()
        terminated = sig.success
        truncated = not terminated and ep.step + 1 >= self.s.horizon
        record = StepRecord(
            robot_id=self.s.robot_id, episode_id=ep.id, episode_kind=ep.kind, step=ep.step,
            mode=mode, state=state.state.tolist(), action=applied.action.tolist(),
            policy_action=_finite_or_none(p_action), human_action=_finite_or_none(human),
            action_source="hold" if applied.refused else choice.source,
            intervention=choice.intervention and not applied.refused, reward=sig.reward,
            success=sig.success, terminated=terminated, truncated=truncated, t_obs=state.t,
            policy_info=p_info,
        )  # fmt: skip
        ep.last_step_seq = self.pub.step(record, state.images)
        ep.step += 1
        if terminated:
            self._end_episode("success", Outcome.SUCCESS, terminated=True, truncated=False)
        elif truncated:
            self._end_episode("time_limit", None, terminated=False, truncated=True)

    def _watch_teleop(self, mode: M, human: np.ndarray | None) -> None:
        """Report once when the operator's input goes stale while a human should drive."""
        fresh = human is not None
        if self._human_fresh and not fresh and mode in HUMAN_DRIVEN:
            then = "control returns to the policy" if mode is M.INTERVENTION else "holding"
            self._safety("stale_command", f"no teleop action within {self.s.watchdog_s} s; {then}")
        self._human_fresh = fresh

    # ----------------------------------------------------------------- commands
    def _answer(self, incoming: Incoming, now: float) -> None:
        assert self.cmds is not None
        cmd = incoming.command
        if cmd is None:
            ok, reason, seq, kind = False, f"malformed command: {incoming.error}", 0, "invalid"
        elif incoming.superseded:
            ok, reason = False, "clear_estop superseded by an e-stop sent after it"
            seq, kind = cmd.seq, cmd.body.type
        else:
            ok, reason = self._on_command(cmd, now, incoming.envelope[0])
            seq, kind = cmd.seq, cmd.body.type
            if not ok and kind != "teleop_action":
                log.warning("command %s refused: %s", kind, reason)
            elif not ok:
                self._refused_teleop += 1
                if self._refused_teleop % 100 == 1:
                    log.warning(
                        "teleop_action refused (%d so far): %s", self._refused_teleop, reason
                    )
        reply = CommandReply(
            robot_id=self.s.robot_id, command_seq=seq, command_type=kind, ok=ok, reason=reason,
            mode=self.machine.mode,
        )  # fmt: skip
        self.cmds.reply(incoming.envelope, reply)

    def _refuse_shed(self, envelopes: list[list[bytes]]) -> None:
        """Answer the commands over this tick's budget with one encoded refusal."""
        assert self.cmds is not None
        reply = CommandReply(
            robot_id=self.s.robot_id, command_seq=0, command_type="shed", ok=False,
            reason="command budget of this tick exceeded: not handled", mode=self.machine.mode,
        )  # fmt: skip
        parts = wire.encode(reply)
        for envelope in envelopes:
            self.cmds.reply_parts(envelope, parts)

    def _on_command(self, cmd: Command, now: float, sender: bytes = b"") -> tuple[bool, str]:
        body = cmd.body
        offset = self.clocks.update(sender, cmd.t_mono, now)  # the sender's clock -> ours
        if cmd.robot_id not in (None, self.s.robot_id):
            return False, f"command for robot {cmd.robot_id!r}; this bridge is {self.s.robot_id!r}"
        if isinstance(body, TeleopAction):
            return self._on_teleop(body, now, body.t_input + offset)
        if isinstance(body, Ping):
            return True, "pong"
        if isinstance(body, LabelEpisode):
            return self._on_label(body)
        if isinstance(body, EndEpisode) and self.machine.mode is M.AWAIT_RESET:
            return self._label_last(body)
        if isinstance(body, EStop):
            self._estop(_why("operator e-stop", body.operator, body.reason), kind="estop")
            return True, "e-stop latched"
        if isinstance(body, StopEval):
            return self._stop_eval(_why("stop_eval", body.operator, body.reason))
        if body.type == "clear_estop" and not self.backend.link_ok:
            self.backend.probe()
        verdict = self.machine.check(
            body.type, policy_ready=self.policy.ready, link_ok=self.backend.link_ok,
            last_kind=self.last_kind, next_on_reset=self.s.next_episode_on_reset,
            eval_pending=self.eval is not None and self.eval.pending,
        )  # fmt: skip
        if not verdict.ok or verdict.target is None:
            return False, verdict.reason
        return self._transition(
            body.type, verdict.target, _why(body.type, body.operator, body.reason), body
        )

    def _transition(self, command: str, target: M, why: str, body: object) -> tuple[bool, str]:
        if command == "end_episode":
            label = getattr(body, "label", Outcome.DISCARD)
            success = label is Outcome.SUCCESS
            self._end_episode("operator_label", label, terminated=success, truncated=not success)
            return True, f"episode ended ({label.value})"
        if command == "clear_estop":
            self.latch.clear()
        if command == "take_over" and self._evaluating():
            return self._fail_eval_episode(why)
        if command == "take_over":
            # Actions are deltas from the measured pose: clearing the slot means the
            # first tick after the take-over holds at that pose until the operator acts.
            self.teleop.clear()
            self._human_fresh = False
        if isinstance(body, StartEval):
            self._new_eval_batch(body.episodes, why)
        else:
            self._maybe_abandon_eval(command, target)
        if target in ACTIVE and self.machine.mode not in ACTIVE:
            kind = self._next_kind(target, command)
            return self._start_episode(target, why, getattr(body, "operator", None), kind)
        self.machine.go(target, why)
        self._publish_status()
        return True, why

    def _on_teleop(self, body: TeleopAction, now: float, t_input: float) -> tuple[bool, str]:
        """Keep the operator's action, stamped with its input time on our clock (``t_input``).

        A neutral input (``action`` None) clears the kept action in any mode; an
        action older than the watchdog, aged from its input time, is refused.
        """
        if body.action is None:
            self.teleop.clear()
            self._human_fresh = False  # a release, not a stale link: no safety event
            return True, "neutral input: holding"
        if self.machine.mode not in HUMAN_DRIVEN:
            return False, f"teleop_action ignored: mode is {self.machine.mode.value}"
        bad = safety.out_of_range(body.action)
        if bad:
            return False, f"teleop_action components {bad} are outside [-1, 1]"
        if safety.is_stale(t_input, now, self.s.watchdog_s):
            age, limit = now - t_input, self.s.watchdog_s
            return False, f"teleop_action stale: input {age:.3f} s old (watchdog {limit} s)"
        self.teleop.put(np.asarray(body.action, dtype=np.float64), t_input)
        return True, "ok"

    def _label_last(self, body: EndEpisode) -> tuple[bool, str]:
        """A label while awaiting reset applies to the episode that just ended (e.g. at the
        time limit). Evaluation episodes are scored by the robot, not relabelled here."""
        last = next(reversed(self.recent), None)
        if last is None:
            return False, "no episode has ended yet: nothing to label"
        if self.recent[last] is EpisodeKind.EVALUATION:
            return False, f"evaluation episode {last} is scored by the robot, not labelled"
        relabel = LabelEpisode(episode_id=last, label=body.label, operator=body.operator)
        return self._on_label(relabel)

    def _on_label(self, body: LabelEpisode) -> tuple[bool, str]:
        kind = self.recent.get(body.episode_id)
        if kind is None:
            return False, f"episode {body.episode_id!r} is unknown or still running"
        assert self.pub is not None
        event = EpisodeEvent(
            robot_id=self.s.robot_id, episode_id=body.episode_id, episode_kind=kind,
            event="label", reason="relabel", outcome=body.label, operator=body.operator,
        )  # fmt: skip
        self.pub.episode(event)
        return True, f"episode {body.episode_id} labelled {body.label.value}"

    # ----------------------------------------------------------------- evaluation
    def _evaluating(self) -> bool:
        return self.episode is not None and self.episode.kind is EpisodeKind.EVALUATION

    def _next_kind(self, target: M, command: str) -> EpisodeKind:
        if target is M.TELEOP:
            return EpisodeKind.DEMO
        batch_goes_on = command == "reset_done" and self.eval is not None and self.eval.pending
        if command == "start_eval" or batch_goes_on:
            return EpisodeKind.EVALUATION
        return EpisodeKind.ROLLOUT

    def _new_eval_batch(self, episodes: int, why: str) -> None:
        if self.eval is not None:
            self.eval.stop("replaced by a new batch")
        batch_id = f"eval-{self.s.robot_id}-{time.strftime('%Y%m%dT%H%M%S')}-{self._episodes:04d}"
        self.eval = EvalBatch(batch_id, episodes, self.auto_reset)
        log.info("evaluation batch %s: %d episodes (%s)", batch_id, episodes, why)

    def _maybe_abandon_eval(self, command: str, target: M) -> None:
        """Starting another kind of episode, or idling after a reset, ends a batch still pending."""
        batch = self.eval
        if batch is None or not batch.pending:
            return
        if command in ("start_demo", "start_rollout"):
            batch.stop(f"{command} instead of the next evaluation episode")
        elif command == "reset_done" and target is M.IDLE:
            batch.stop("reset done but no policy is loaded")

    def _fail_eval_episode(self, why: str) -> tuple[bool, str]:
        """A take-over ends an evaluation episode as a failure; the robot waits for a reset."""
        assert self.episode is not None
        ep_id = self.episode.id
        self._end_episode(
            "take_over", Outcome.FAILURE, terminated=False, truncated=True, auto_next=False
        )
        return True, f"{why}: evaluation episode {ep_id} ended as a failure (no human in eval)"

    def _stop_eval(self, why: str) -> tuple[bool, str]:
        batch = self.eval
        if batch is None or not batch.running:
            return False, "stop_eval refused: no evaluation batch is running"
        batch.stop(why)
        if self._evaluating():
            self._end_episode(
                "eval_stopped", Outcome.DISCARD, terminated=False, truncated=True, auto_next=False
            )
        else:
            self._publish_status()
        log.info("evaluation batch %s stopped after %d/%d: %s", batch.id, batch.done,
                 batch.total, why)  # fmt: skip
        return True, f"evaluation batch {batch.id} stopped after {batch.done}/{batch.total}"

    def _tally_eval(self, ep: Episode, reason: str, outcome: Outcome | None) -> None:
        """Count a finished evaluation episode (stopped and e-stopped ones do not count)."""
        batch = self.eval
        if ep.kind is not EpisodeKind.EVALUATION or batch is None or not batch.running:
            return
        if reason in ("eval_stopped", "safety_stop") or outcome is Outcome.DISCARD:
            return
        batch.record(outcome is Outcome.SUCCESS)
        if not batch.running:
            log.info("evaluation batch %s done: %d/%d autonomous successes", batch.id,
                     batch.successes, batch.total)  # fmt: skip

    def _next_eval_episode(self, operator: str | None) -> None:
        """The simulator resets itself: start the batch's next episode at once."""
        ok, reason = self._start_episode(
            M.ROLLOUT, "next evaluation episode (the robot resets itself)", operator,
            EpisodeKind.EVALUATION,
        )  # fmt: skip
        if not ok:
            assert self.eval is not None
            self.eval.stop(reason)
            log.warning("evaluation batch %s stopped: %s", self.eval.id, reason)

    # ----------------------------------------------------------------- episodes
    def _reset_seed(self, kind: EpisodeKind) -> int | None:
        """Evaluation episodes replay the same scenes batch after batch (``eval_seed``)."""
        batch, base = self.eval, self.s.eval_seed
        if kind is EpisodeKind.EVALUATION and batch is not None and base is not None:
            return base + batch.done
        return None if self.s.seed is None else self.s.seed + self._episodes

    def _start_episode(
        self, target: M, why: str, operator: str | None, kind: EpisodeKind
    ) -> tuple[bool, str]:
        seed = self._reset_seed(kind)
        try:
            self.state = self.backend.reset(randomize=self.s.randomize_reset, seed=seed)
        except DriverError as exc:
            return False, f"could not reset the robot: {exc}"
        self._episodes += 1
        ep_id = f"{self.s.robot_id}-{time.strftime('%Y%m%dT%H%M%S')}-{self._episodes:04d}"
        index = None
        if kind is EpisodeKind.EVALUATION and self.eval is not None:
            index = self.eval.done + 1
        self.episode = Episode(
            ep_id, kind, operator=operator, weights_version=self.policy.version, eval_index=index
        )
        self.policy.reset()  # stacked observations never span two episodes
        self.teleop.clear()
        self._gripper_cmd, self._human_fresh = -1.0, False
        assert self.pub is not None
        start = EpisodeEvent(
            robot_id=self.s.robot_id, episode_id=ep_id, episode_kind=kind, event="start",
            operator=operator, **self._eval_fields(self.episode),
        )  # fmt: skip
        self.pub.episode(start)
        self.machine.go(target, f"{why}; episode {ep_id}")
        self._publish_status()
        return True, f"episode {ep_id} started"

    def _eval_fields(self, ep: Episode) -> dict[str, Any]:
        batch = self.eval if ep.kind is EpisodeKind.EVALUATION else None
        return {
            "weights_version": ep.weights_version,
            "eval_batch": None if batch is None else batch.id,
            "eval_index": ep.eval_index,
        }

    def _end_episode(
        self, reason: EndReason, outcome: Outcome | None, *, terminated: bool, truncated: bool,
        final: bool = True, to: M = M.AWAIT_RESET, auto_next: bool = True,
    ) -> None:  # fmt: skip
        """Publish the end event with the final observation and leave the episode.

        In an evaluation batch on a robot that resets itself, the next episode starts
        at once (``auto_next``); otherwise the robot waits for reset_done.
        """
        ep = self.episode
        assert ep is not None and self.pub is not None
        state = self._observe() if final else None
        state = state or self.state
        event = EpisodeEvent(
            robot_id=self.s.robot_id, episode_id=ep.id, episode_kind=ep.kind, event="end",
            reason=reason, outcome=outcome, num_steps=ep.step, last_step_seq=ep.last_step_seq,
            terminated=terminated, truncated=truncated, operator=ep.operator,
            final_state=None if state is None else state.state.tolist(), **self._eval_fields(ep),
        )  # fmt: skip
        self.pub.episode(event, {} if state is None else state.images)
        self.recent[ep.id] = ep.kind
        while len(self.recent) > RECENT_EPISODES:
            self.recent.popitem(last=False)
        self.last_kind, self.episode = ep.kind, None
        self._tally_eval(ep, reason, outcome)
        self.machine.go(to, f"episode {ep.id} ended: {reason}")
        self._publish_status()
        batch = self.eval
        goes_on = auto_next and reason in ("success", "time_limit", "operator_label")
        goes_on = goes_on and to is M.AWAIT_RESET and ep.kind is EpisodeKind.EVALUATION
        if goes_on and self.auto_reset and batch is not None and batch.pending:
            self._next_eval_episode(ep.operator)

    # ----------------------------------------------------------------- safety
    def _estop(self, reason: str, *, kind: safety.SafetyKind) -> None:
        self.latch.trip(reason, self._clock())
        if self.eval is not None:
            self.eval.stop(f"e-stop: {reason}")
        self._safety(kind, reason)
        if self.episode is not None:
            link = kind != "link_lost"
            self._end_episode(
                "safety_stop", None, terminated=False, truncated=True, final=link, to=M.ESTOP
            )
        try:
            self.backend.stop()
        except DriverError as exc:
            log.warning("could not stop the arm: %s", exc)
        if self.machine.mode is not M.ESTOP:
            self.machine.go(M.ESTOP, reason)
        self._publish_status()

    def _safety(self, kind: safety.SafetyKind, detail: str) -> None:
        self._record(safety.event(kind, detail, time.time()))

    def _record(self, ev: SafetyEvent) -> None:
        if ev.kind == "clipped":
            held = None
        elif ev.kind in UNTHROTTLED_SAFETY:
            held = 0
        else:  # at most one line per kind and period: a limit can hold for many ticks
            held = self._log_throttle(("safety", ev.kind))
        if held is not None:
            note = held_note(held, self._log_throttle.period_s)
            log.warning("safety: %s: %s%s", ev.kind, ev.detail, note)
        self.safety_events.append(ev)

    # ----------------------------------------------------------------- status
    def status(self) -> BridgeStatus:
        st, ep = self.state, self.episode
        return BridgeStatus(
            robot_id=self.s.robot_id, robot=self.backend.name, mode=self.machine.mode,
            episode_id=ep.id if ep else None, episode_kind=ep.kind if ep else None,
            step=ep.step if ep else 0, horizon=self.s.horizon,
            ee_pos=None if st is None else [float(x) for x in st.ee_pos],
            ee_quat=None if st is None else [float(x) for x in st.ee_quat],
            gripper=None if st is None else float(st.gripper), link_ok=self.backend.link_ok,
            policy_ready=self.policy.ready, policy_kind=self.policy.kind,
            weights_version=self.policy.version,
            weights_lag=getattr(self.policy, "lag", None),
            estop_reason=self.latch.reason, timing=self.timing.snapshot(),
            safety_events=list(self.safety_events), last_transition=self.machine.last,
            eval=None if self.eval is None else self.eval.progress(),
        )  # fmt: skip

    def _publish_status(self) -> None:
        if self.pub is not None:
            self.pub.status(self.status())
        now = self._clock()
        self._next_status = now + self.s.status_period_s
        if self.cameras is not None and now >= self._next_camera_log:
            self._next_camera_log = now + CAMERA_LOG_PERIOD_S
            for cam in self.cameras.cameras.values():
                log.info(
                    "camera %s: %d frames captured, %d dropped (overwritten before use), "
                    "%d failed reads", cam.name, cam.captured, cam.dropped, cam.failures,
                )  # fmt: skip


def resets_itself(backend: RobotBackend) -> bool:
    """The simulator and the mock reset their scene themselves; a real arm needs a person."""
    return backend.name.startswith("sim:") or backend.name == "mock"


def _finite_or_none(action: np.ndarray | None) -> list[float] | None:
    if action is None:
        return None
    arr, _ = safety.check_shape_finite(action, 0.0)
    return None if arr is None else arr.tolist()


def _why(command: str, operator: str | None, reason: str | None) -> str:
    who = f" by {operator}" if operator else ""
    return f"{command}{who}" + (f": {reason}" if reason else "")
