"""The control-mode state machine (DESIGN.md, Control modes) and the per-tick action choice.

Pure: no sockets, no backend. The bridge asks ``check`` whether a command is
legal now, performs the effects, then calls ``go`` to record the transition.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tandem.messages import ActionSource, EpisodeKind, EvalProgress, Transition
from tandem.messages import ControlMode as M

log = logging.getLogger(__name__)

ACTIVE = frozenset({M.TELEOP, M.ROLLOUT, M.INTERVENTION})
HUMAN_DRIVEN = frozenset({M.TELEOP, M.INTERVENTION})

# (command, from mode) -> to mode, for commands whose target does not depend on context.
_TABLE: dict[str, tuple[frozenset[M], M]] = {
    "start_demo": (frozenset({M.IDLE, M.AWAIT_RESET}), M.TELEOP),
    "start_rollout": (frozenset({M.IDLE, M.AWAIT_RESET}), M.ROLLOUT),
    "start_eval": (frozenset({M.IDLE, M.AWAIT_RESET}), M.ROLLOUT),
    "take_over": (frozenset({M.ROLLOUT}), M.INTERVENTION),
    "hand_back": (frozenset({M.INTERVENTION}), M.ROLLOUT),
    "end_episode": (ACTIVE, M.AWAIT_RESET),
    "reset_done": (frozenset({M.AWAIT_RESET}), M.IDLE),  # or the next episode, see check
    "clear_estop": (frozenset({M.ESTOP}), M.IDLE),
}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    target: M | None = None


class ModeMachine:
    """Current mode, legal transitions and their log (most recent last)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.mode = M.IDLE
        self._wall = wall
        self.history: deque[Transition] = deque(maxlen=100)

    @property
    def last(self) -> Transition | None:
        return self.history[-1] if self.history else None

    def check(
        self,
        command: str,
        *,
        policy_ready: bool,
        link_ok: bool,
        last_kind: EpisodeKind | None = None,
        next_on_reset: bool = True,
        eval_pending: bool = False,
    ) -> Verdict:
        """May ``command`` run now? Gives the target mode or the reason for refusing.

        ``eval_pending``: an evaluation batch has episodes left (reset_done starts the next).
        """
        if command == "estop":
            return Verdict(True, "e-stop", M.ESTOP)
        if command not in _TABLE:
            return Verdict(False, f"unknown command {command!r}")
        sources, target = _TABLE[command]
        if self.mode not in sources:
            return Verdict(False, _illegal(command, self.mode, sources))
        if command == "reset_done":
            target = _after_reset(last_kind, next_on_reset, policy_ready, eval_pending)
        needs_link = target in ACTIVE or command == "clear_estop"
        if needs_link and not link_ok:
            return Verdict(False, f"{command} refused: the link to the robot is down")
        if target in (M.ROLLOUT, M.INTERVENTION) and not policy_ready and command != "reset_done":
            return Verdict(False, f"{command} refused: no policy is loaded")
        return Verdict(True, command, target)

    def go(self, to: M, reason: str) -> Transition:
        """Record and log the transition to ``to``."""
        tr = Transition(from_mode=self.mode, to_mode=to, reason=reason, t_wall=self._wall())
        log.info("mode %s -> %s: %s", self.mode.value, to.value, reason)
        self.mode = to
        self.history.append(tr)
        return tr


def _illegal(command: str, mode: M, sources: frozenset[M]) -> str:
    allowed = ", ".join(sorted(m.value for m in sources))
    return f"{command} is not allowed in mode {mode.value} (allowed in: {allowed})"


def _after_reset(
    last_kind: EpisodeKind | None, next_on_reset: bool, policy_ready: bool, eval_pending: bool
) -> M:
    """reset_done starts the next episode of the kind that just ended (documented choice).

    An evaluation batch with episodes left always goes on (a real robot waits for
    reset_done between evaluation episodes); after its last episode the robot idles.
    """
    if eval_pending:
        return M.ROLLOUT if policy_ready else M.IDLE
    if not next_on_reset or last_kind in (None, EpisodeKind.EVALUATION):
        return M.IDLE
    if last_kind is EpisodeKind.DEMO:
        return M.TELEOP
    return M.ROLLOUT if policy_ready else M.IDLE


@dataclass
class EvalBatch:
    """Tally of one evaluation batch: ``total`` episodes asked, ``done`` finished."""

    id: str
    total: int
    auto_reset: bool
    done: int = 0
    successes: int = 0
    running: bool = True
    stopped_reason: str | None = None

    @property
    def pending(self) -> bool:
        """Episodes are left to run."""
        return self.running and self.done < self.total

    def record(self, success: bool) -> None:
        """One episode finished; the batch stops running after the last one."""
        self.done += 1
        self.successes += int(success)
        if self.done >= self.total:
            self.running = False

    def stop(self, reason: str) -> None:
        if self.running:
            self.running, self.stopped_reason = False, reason

    def progress(self) -> EvalProgress:
        return EvalProgress(
            batch=self.id, total=self.total, done=self.done, successes=self.successes,
            running=self.running, auto_reset=self.auto_reset, stopped_reason=self.stopped_reason,
        )  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """The action of one tick: what to apply, who chose it, and whether a human drove a rollout."""

    action: np.ndarray
    source: ActionSource
    intervention: bool = False


def choose_action(
    mode: M, proposal: np.ndarray | None, human: np.ndarray | None, hold: np.ndarray
) -> Choice:
    """Arbitrate between policy, operator and hold for one tick of an active episode.

    teleop: the operator's fresh action, else hold. rollout: the policy, else
    hold. intervention: the operator's fresh action, else control returns to the
    policy for this tick (else hold).
    """
    if mode in HUMAN_DRIVEN and human is not None:
        return Choice(human, ActionSource.HUMAN, intervention=mode is M.INTERVENTION)
    if mode in (M.ROLLOUT, M.INTERVENTION) and proposal is not None:
        return Choice(proposal, ActionSource.POLICY)
    return Choice(hold, ActionSource.HOLD)
