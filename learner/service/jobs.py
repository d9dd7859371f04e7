"""``Job``: one unit of the trainer's work on its own daemon thread (an IL refit, an IL cache).

The trainer starts a job, keeps training, and polls ``done`` between two updates; a job that
raises reports ``error`` instead of stopping anything, and ``seconds`` says how long it ran.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Self

log = logging.getLogger(__name__)


class Job:
    """Runs ``work`` once on a daemon thread named ``name`` (subclasses define both)."""

    name = "job"

    def __init__(self) -> None:
        self.error: str | None = None
        self.seconds = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def work(self) -> None:
        raise NotImplementedError

    def _main(self) -> None:
        t0 = time.monotonic()
        try:
            self.work()
        except Exception as exc:  # any failure: the job reports it, the trainer carries on
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("%s failed after %.1f s", self.name, time.monotonic() - t0)
        finally:
            self.seconds = time.monotonic() - t0
            self._done.set()
