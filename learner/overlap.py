"""Overlap of acting and learning in ``tandem train``: update calls on a learner thread.

The env loop calls ``request()`` where the sequential loop would run an update call; a
learner thread runs them in order. ``request`` blocks while ``max_lag`` calls are still
pending, so the update-to-data ratio holds: after ``n`` requests at least ``n - max_lag``
calls are done, and ``drain()`` (before an evaluation, a checkpoint and at the end) waits
for all of them. An exception on the learner thread is raised again in the env loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class UpdateWorker:
    """Runs ``update()`` on a daemon thread once per ``request()``, in order."""

    def __init__(self, update: Callable[[], None], max_lag: int):
        if max_lag < 1:
            raise ValueError(f"max_lag must be >= 1, got {max_lag}")
        self._update, self.max_lag = update, max_lag
        self._cond = threading.Condition()
        self.requested = 0
        self.done = 0
        self.max_pending_seen = 0  # the largest backlog a request() left (<= max_lag)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="learner-updates", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self.requested - self.done

    def request(self) -> None:
        """Ask for one more update call; waits while ``max_lag`` calls are pending."""
        with self._cond:
            self._cond.wait_for(lambda: self.pending < self.max_lag or self._stopped())
            self._raise()
            self.requested += 1
            self.max_pending_seen = max(self.max_pending_seen, self.pending)
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every requested update call has run."""
        with self._cond:
            self._cond.wait_for(lambda: self.pending == 0 or self._stopped())
            self._raise()

    def close(self) -> None:
        """Finish the pending calls and stop the thread."""
        try:
            self.drain()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join()

    def _stopped(self) -> bool:
        return self._error is not None or self._closed

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError("the learner thread failed") from self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self.pending > 0 or self._closed)
                if self.pending == 0:
                    return
            try:
                self._update()
            except BaseException as exc:  # handed to the env loop, which raises it
                log.exception("update call failed on the learner thread")
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self.done += 1
                self._cond.notify_all()
