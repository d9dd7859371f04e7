"""Login attempts limited per user name and per client address (sliding windows in memory).

Every attempt counts, right or wrong, and it is counted before the password is
checked: a burst of simultaneous guesses is limited as well as a slow one, and
a refused attempt costs no hashing. The windows live in the server process
(one server per deployment), so a restart forgets them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

MAX_KEYS = 10_000  # windows kept per limiter; the stalest go first beyond it


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}

    def wait_s(self, key: str, now: float) -> float:
        """Seconds until ``key`` may hit again (0: now). Forgets hits older than the window."""
        hits = self._hits.get(key)
        if hits is None:
            return 0.0
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return 0.0
        return 0.0 if len(hits) < self.limit else hits[0] + self.window_s - now

    def hit(self, key: str, now: float) -> None:
        hits = self._hits.pop(key, None) or deque()
        hits.append(now)
        self._hits[key] = hits  # re-inserted: the dict stays ordered by last hit
        if len(self._hits) > MAX_KEYS:
            del self._hits[next(iter(self._hits))]


class LoginLimiter:
    """Per-user and per-address sliding windows; thread-safe (sync routes run in a pool)."""

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._user = SlidingWindow(per_user, window_s)
        self._address = SlidingWindow(per_address, window_s)
        self._lock = threading.Lock()

    def attempt(self, name: str, address: str) -> int:
        """Count one attempt; returns 0 when it may proceed, else the whole seconds to wait.

        A refused attempt is not counted, so waiting out ``Retry-After`` works.
        """
        with self._lock:
            now = self._clock()
            wait = max(self._user.wait_s(name.lower(), now), self._address.wait_s(address, now))
            if wait > 0:
                return max(1, math.ceil(wait))
            self._user.hit(name.lower(), now)
            self._address.hit(address, now)
            return 0
