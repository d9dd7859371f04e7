"""Clock-offset estimates: inputs age from when they were made, whatever held them up."""

from __future__ import annotations

from tandem.clock import ClockOffset, LinkClocks

OFFSET = 1000.0  # our clock minus the sender's
DELAY = 0.002  # a normal message's delay


def test_offset_is_the_smallest_delay_seen() -> None:
    clock = ClockOffset()
    for k, delay in enumerate([0.010, DELAY, 0.030, 0.005]):
        t = k * 0.1
        clock.update(t, t + OFFSET + delay)
    assert abs(clock.offset - (OFFSET + DELAY)) < 1e-3  # type: ignore[operator]


def test_a_frozen_senders_backlog_keeps_its_age() -> None:
    """Inputs made during a 2 s freeze arrive together after it: each is as old as it is."""
    clock = ClockOffset()
    for k in range(50):  # 5 s of normal traffic at 10 Hz
        clock.local(k * 0.1, k * 0.1 + OFFSET + DELAY)
    resume = 5.0 + 2.0 + OFFSET
    ages = [resume - clock.local(5.0 + k * 0.1, resume) for k in range(20)]
    assert all(abs(age - (2.0 - k * 0.1)) < 0.01 for k, age in enumerate(ages)), ages


def test_a_freeze_longer_than_any_window_does_not_make_its_backlog_fresh() -> None:
    clock = ClockOffset()
    clock.local(0.0, OFFSET + DELAY)
    late = 600.0 + OFFSET  # ten minutes later, an input made just before the freeze
    assert late - clock.local(0.1, late) > 599.0  # drift allowance: 0.6 s at most


def test_the_estimate_follows_a_slow_drift() -> None:
    clock = ClockOffset(drift=1e-3)
    for k in range(1000):  # the sender's clock runs 1e-4 slow
        t = k * 0.1
        clock.local(t * (1 - 1e-4), t + OFFSET + DELAY)
    age = 100.0 + OFFSET - clock.local(100.0 * (1 - 1e-4), 100.0 + OFFSET + DELAY)
    assert abs(age) < 0.005


def test_links_are_estimated_apart_and_bounded() -> None:
    links = LinkClocks(limit=3)
    assert links.update(b"a", 0.0, 10.0) == 10.0
    assert links.update(b"b", 0.0, 50.0) == 50.0
    assert abs(links.update(b"a", 1.0, 11.5) - 10.0) < 0.01  # a's own offset, not b's
    for name in (b"c", b"d", b"e"):
        links.update(name, 0.0, 1.0)
    assert len(links) == 3
