"""The login limiter on a fake clock: sliding windows per user and per address."""

from __future__ import annotations

import pytest

from server import ratelimit
from server.ratelimit import LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_window_slides_and_retry_after_is_exact() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_user=2, per_address=10, window_s=60, clock=clock)
    assert limiter.attempt("carol", "a") == 0
    clock.t += 20
    assert limiter.attempt("carol", "a") == 0
    assert limiter.attempt("carol", "a") == 40  # the first attempt leaves the window in 40 s
    clock.t += 39.5
    assert limiter.attempt("Carol", "b") == 1  # names are not case-sensitive here
    clock.t += 0.5
    assert limiter.attempt("carol", "b") == 0  # refusals were not counted
    assert limiter.attempt("carol", "b") == 20


def test_the_address_limit_spans_names() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_user=5, per_address=3, window_s=10, clock=clock)
    assert [limiter.attempt(f"n{i}", "a") for i in range(4)] == [0, 0, 0, 10]
    assert limiter.attempt("n9", "b") == 0
    clock.t += 10
    assert limiter.attempt("n9", "a") == 0


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 100)
    limiter = LoginLimiter(per_user=1, per_address=10_000, window_s=60, clock=Clock())
    for i in range(1000):
        limiter.attempt(f"name{i}", "a")
    assert len(limiter._user._hits) == 100
    assert limiter.attempt("name999", "a") > 0  # the newest windows are the ones kept
