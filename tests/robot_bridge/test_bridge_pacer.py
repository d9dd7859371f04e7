"""Pacing on absolute deadlines with a fake clock; timing statistics."""

from __future__ import annotations

import pytest

from robot_bridge.pacer import Pacer, TimingStats

pytestmark = pytest.mark.timeout(30)


class FakeClock:
    def __init__(self, t: float = 1000.0, tick: float = 0.0) -> None:
        self.t = t
        self.tick = tick  # time that passes on every reading (busy-waiting)
        self.sleeps: list[float] = []
        self.readings = 0

    def __call__(self) -> float:
        self.t += self.tick
        self.readings += 1
        return self.t

    def sleep(self, dt: float) -> None:
        self.sleeps.append(dt)
        self.t += dt + 0.0003  # every sleep oversleeps a little, like a real one


def test_deadlines_do_not_drift() -> None:
    clock = FakeClock()
    pacer = Pacer(0.1, clock=clock, sleep=clock.sleep, spin_s=0.0)
    pacer.start()
    t0 = clock.t
    for i in range(1000):
        lateness = pacer.wait()
        assert lateness == pytest.approx(0.0 if i == 0 else 0.0003, abs=1e-9)
        clock.t += 0.02  # work
        assert pacer.finish() == 0
    # 1000 ticks later we are exactly on the 1000th deadline: oversleep never accumulates
    assert pacer.deadline == pytest.approx(t0 + 100.0)
    assert clock.t - t0 == pytest.approx(99.9 + 0.02 + 0.0003, abs=1e-6)


def test_missed_ticks_are_skipped_not_burst() -> None:
    clock = FakeClock()
    pacer = Pacer(0.1, clock=clock, sleep=clock.sleep, spin_s=0.0)
    pacer.start()
    t0 = clock.t
    pacer.wait()
    clock.t += 0.35  # a tick that takes 3.5 periods
    assert pacer.finish() == 3  # deadlines 1, 2, 3 are skipped
    assert pacer.deadline == pytest.approx(t0 + 0.4)
    pacer.wait()
    assert clock.t == pytest.approx(t0 + 0.4 + 0.0003)


def test_spin_phase_busy_waits_the_end() -> None:
    clock = FakeClock(tick=1e-5)
    pacer = Pacer(0.1, clock=clock, sleep=clock.sleep, spin_s=0.002)
    pacer.start()
    clock.t += 0.01
    pacer.finish()
    before = clock.readings
    lateness = pacer.wait()
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] == pytest.approx(0.1 - 0.01 - 0.002, abs=1e-4)
    assert clock.readings - before > 100, "the last ~1.7 ms are busy-waited"
    assert 0 <= lateness < 2e-5


def test_timing_stats_snapshot() -> None:
    stats = TimingStats(10.0, window=100)
    for i in range(200):
        stats.record(lateness_s=0.001 * (i % 10), work_s=0.005, skipped=1 if i == 5 else 0)
    snap = stats.snapshot()
    assert snap.ticks == 200 and snap.overruns == 1 and snap.rate_hz == 10.0
    assert snap.lateness_max_ms == pytest.approx(9.0)
    assert snap.lateness_p50_ms == pytest.approx(4.5)
    assert snap.work_p99_ms == pytest.approx(5.0)
    assert TimingStats(10.0).snapshot().ticks == 0


def test_realtime_refused_warns_and_continues(monkeypatch, caplog) -> None:
    import os

    from robot_bridge import pacer

    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert pacer.enable_realtime(10) is False
    assert "SCHED_FIFO priority 10 refused" in caplog.text
