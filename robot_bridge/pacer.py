"""Fixed-rate pacing on absolute deadlines, tick timing statistics, real-time priority.

Deadline ``k`` is ``t0 + k * period`` on the monotonic clock, so sleep
jitter never accumulates into drift. A tick whose work runs past the next
deadline makes the pacer skip the missed deadlines (counted as overruns)
instead of bursting to catch up.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from tandem.messages import LoopTiming

log = logging.getLogger(__name__)


class Pacer:
    """Sleeps until each absolute deadline; ``spin_s`` of the wait is spent busy-waiting."""

    def __init__(
        self,
        period_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        spin_s: float = 0.0005,
    ) -> None:
        self.period = period_s
        self._clock, self._sleep, self._spin = clock, sleep, spin_s
        self.t0 = clock()
        self.k = 0

    def start(self) -> None:
        self.t0, self.k = self._clock(), 0

    @property
    def deadline(self) -> float:
        return self.t0 + self.k * self.period

    def wait(self) -> float:
        """Sleep until the current deadline; return the lateness in seconds (>= 0)."""
        deadline = self.deadline
        while (left := deadline - self._clock()) > 0:
            if left > self._spin:
                self._sleep(left - self._spin if self._spin else left)
            # else: busy-wait the last ``spin_s`` (sleep wake-up jitter is larger)
        return max(0.0, self._clock() - deadline)

    def finish(self) -> int:
        """Advance to the next deadline after a tick's work; return how many were skipped."""
        self.k += 1
        now = self._clock()
        if now <= self.deadline:
            return 0
        k_next = math.floor((now - self.t0) / self.period) + 1
        skipped = k_next - self.k
        self.k = k_next
        return skipped


class TimingStats:
    """Per-tick lateness and work time over a sliding window, cumulative overruns."""

    def __init__(self, rate_hz: float, window: int = 600) -> None:
        self.rate_hz = rate_hz
        self.lateness_ms: deque[float] = deque(maxlen=window)
        self.work_ms: deque[float] = deque(maxlen=window)
        self.overruns = 0
        self.ticks = 0

    def record(self, lateness_s: float, work_s: float, skipped: int) -> None:
        self.lateness_ms.append(lateness_s * 1000.0)
        self.work_ms.append(work_s * 1000.0)
        self.overruns += skipped
        self.ticks += 1

    def snapshot(self) -> LoopTiming:
        if not self.lateness_ms:
            return LoopTiming(rate_hz=self.rate_hz)
        late, work = np.asarray(self.lateness_ms), np.asarray(self.work_ms)
        return LoopTiming(
            rate_hz=self.rate_hz,
            lateness_p50_ms=float(np.percentile(late, 50)),
            lateness_p99_ms=float(np.percentile(late, 99)),
            lateness_max_ms=float(late.max()),
            work_p50_ms=float(np.percentile(work, 50)),
            work_p99_ms=float(np.percentile(work, 99)),
            overruns=self.overruns,
            ticks=self.ticks,
        )


def enable_realtime(priority: int) -> bool:
    """Ask for SCHED_FIFO at ``priority`` for the calling thread; warn and go on if refused."""
    if not hasattr(os, "sched_setscheduler"):
        log.warning("real-time scheduling is not available on this OS; running without it")
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        log.warning("SCHED_FIFO priority %d refused (%s); running without it", priority, exc)
        return False
    log.info("control loop runs with SCHED_FIFO priority %d", priority)
    return True
