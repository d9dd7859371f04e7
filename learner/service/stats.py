"""Rolling episode statistics and rate meters for the learner's metrics."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from learner.episode_arrays import EpisodeArrays
from tandem.messages import EpisodeKind, EpisodeResult, episode_result


@dataclass
class EpisodeStats:
    """Rolling figures over the last ``window`` rollout (and, apart, evaluation) episodes.

    Three separate figures over rollouts (docs/metrics.md): the autonomous success
    rate (succeeded with zero human steps), the success-with-help rate (succeeded
    after a take-over) and the intervention rate (fraction of a rollout's steps a
    human drove, averaged). An episode a human finished is never the policy's success.
    """

    window: int
    demo_episodes: int = 0
    rollout_episodes: int = 0
    eval_episodes: int = 0
    intervention_segments: int = 0
    _autonomous: deque[float] = field(default_factory=deque)
    _assisted: deque[float] = field(default_factory=deque)
    _return: deque[float] = field(default_factory=deque)
    _human_frac: deque[float] = field(default_factory=deque)
    _any_human: deque[float] = field(default_factory=deque)
    _eval_autonomous: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ep: EpisodeArrays, intervention_segments: int) -> None:
        with self._lock:
            self._add(ep, intervention_segments)

    def _add(self, ep: EpisodeArrays, intervention_segments: int) -> None:
        if ep.kind == EpisodeKind.DEMO:
            self.demo_episodes += 1
            return
        human = ep.human_steps
        result = episode_result(ep.kind, ep.success, human)
        if ep.kind == EpisodeKind.EVALUATION:
            self.eval_episodes += 1
            self._push(self._eval_autonomous, float(result is EpisodeResult.AUTONOMOUS_SUCCESS))
            return
        self.rollout_episodes += 1
        self.intervention_segments += intervention_segments
        n = max(1, len(ep))
        for buf, value in (
            (self._autonomous, float(result is EpisodeResult.AUTONOMOUS_SUCCESS)),
            (self._assisted, float(result is EpisodeResult.ASSISTED_SUCCESS)),
            (self._return, ep.episode_return),
            (self._human_frac, human / n),
            (self._any_human, float(human > 0)),
        ):
            self._push(buf, value)

    def _push(self, buf: deque[float], value: float) -> None:
        buf.append(value)
        while len(buf) > self.window:
            buf.popleft()

    def metrics(self) -> dict[str, float | None]:
        with self._lock:
            return self._metrics()

    def _metrics(self) -> dict[str, float | None]:
        return {
            "episode/autonomous_success_rate": _mean(self._autonomous),
            "episode/assisted_success_rate": _mean(self._assisted),
            "episode/return": _mean(self._return),
            "hil/intervention_rate": _mean(self._human_frac),
            "hil/episodes_with_intervention": _mean(self._any_human),
            "eval/autonomous_success_rate": _mean(self._eval_autonomous),
            "data/demo_episodes": float(self.demo_episodes),
            "data/rollout_episodes": float(self.rollout_episodes),
            "data/eval_episodes": float(self.eval_episodes),
            "data/intervention_segments": float(self.intervention_segments),
        }


class RateMeter:
    """Events per second over a sliding time window (thread-safe: read by the outbox)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._events.append((time.monotonic(), n))

    def rate(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._events and now - self._events[0][0] > self.window_s:
                self._events.popleft()
            if not self._events:
                return 0.0
            span = now - self._events[0][0]
            total = sum(n for _, n in self._events)
        return total / max(span, min(self.window_s, 1.0))


def _mean(values: deque[float]) -> float | None:
    return sum(values) / len(values) if values else None
