"""Supervision of the learner service's long-running threads (issue 17).

Each thread (ingest, outbox, the trainer's own loop, an IL refit job) runs its
work in small units under ``Supervisor.guard``: an unexpected exception is
counted per thread (metric ``threads/<name>/errors``), logged with its
traceback and what was being done, and the thread goes on with the next unit.
A unit that consumed its input (``per_item``: one message, one episode) simply
drops that input; a loop unit that failed backs off before it is tried again.
Tracebacks are logged for a thread's first ``LOG_FIRST`` errors, then every
``LOG_EVERY``th, so a fault that repeats cannot flood the log.

A thread that cannot continue is fatal: ``max_consecutive`` failures in a row
without one unit done, or a thread found dead while the service runs
(``check_alive``). ``fatal`` records the reason and sets the stop event; the
main thread then checkpoints and ``tandem learner`` exits with ``EXIT_FATAL``,
so a process supervisor (``tandem up``) restarts it with ``--resume``. If the
main thread does not get there within ``hard_exit_s`` (set by the command, not
in-process users), the process ends anyway.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

EXIT_FATAL = 70  # EX_SOFTWARE: the supervisor restarts the learner
MAX_BACKOFF_S = 2.0
LOG_FIRST, LOG_EVERY = 10, 100


class Supervisor:
    """Counts, logs and recovers thread failures; ends the service on a fatal one."""

    def __init__(
        self,
        stop_event: threading.Event,
        *,
        max_consecutive: int = 20,
        backoff_s: float = 0.05,
        hard_exit_s: float | None = None,
    ) -> None:
        self.stop_event = stop_event
        self.max_consecutive = max_consecutive
        self.backoff_s = backoff_s
        self.hard_exit_s = hard_exit_s
        self.fatal_reason: str | None = None
        self._errors: dict[str, int] = {}
        self._streak: dict[str, int] = {}
        self._lock = threading.Lock()

    def guard(
        self, name: str, fn: Callable[[], object], context: str = "", *, per_item: bool = False
    ) -> bool:
        """Run one unit of thread ``name``'s work; False when it raised (counted, logged).

        ``per_item``: the unit consumed its input, so a failure neither backs off nor
        counts towards the fatal streak (a bad message must not stop ingest).
        """
        try:
            fn()
        except Exception:
            self._failed(name, context, per_item)
            return False
        if not per_item:
            with self._lock:
                self._streak[name] = 0
        return True

    def _failed(self, name: str, context: str, per_item: bool) -> None:
        with self._lock:
            total = self._errors[name] = self._errors.get(name, 0) + 1
            streak = self._streak.get(name, 0) + (not per_item)
            self._streak[name] = streak
        if total <= LOG_FIRST or total % LOG_EVERY == 0:
            where = f" while {context}" if context else ""
            log.exception("%s thread: unexpected error #%d%s; recovering", name, total, where)
        if per_item:
            return
        if streak >= self.max_consecutive:
            self.fatal(f"{name} thread failed {streak} times in a row")
        else:  # back off so a persistent fault does not spin (and flood the log)
            self.stop_event.wait(min(self.backoff_s * 2 ** (streak - 1), MAX_BACKOFF_S))

    def fatal(self, reason: str) -> None:
        """The service cannot continue: stop it; the process exits with ``EXIT_FATAL``."""
        with self._lock:
            first = self.fatal_reason is None
            if first:
                self.fatal_reason = reason
        if not first:
            return
        log.critical("learner cannot continue: %s; stopping (exit code %d)", reason, EXIT_FATAL)
        self.stop_event.set()
        if self.hard_exit_s is not None:
            timer = threading.Timer(self.hard_exit_s, _hard_exit, args=(reason,))
            timer.daemon = True
            timer.start()

    def check_alive(self, threads: Mapping[str, threading.Thread | None]) -> None:
        """Fatal when a thread that should run has ended (an error escaped its guards)."""
        if self.stop_event.is_set():
            return
        for name, thread in threads.items():
            if thread is not None and not thread.is_alive():
                self.fatal(f"the {name} thread ended unexpectedly")

    def metrics(self) -> dict[str, float]:
        """``threads/<name>/errors`` per thread and ``threads/fatal`` (1 once fatal)."""
        with self._lock:
            out = {f"threads/{name}/errors": float(n) for name, n in self._errors.items()}
        out["threads/fatal"] = float(self.fatal_reason is not None)
        return out


def _hard_exit(reason: str) -> None:
    log.critical("learner did not stop within the grace period after: %s; exiting", reason)
    logging.shutdown()
    os._exit(EXIT_FATAL)
