"""Safety functions with a fake clock: shape/finite check, clipping, workspace, latch, watchdog."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robot_bridge import safety
from robot_bridge.safety import EStopLatch, KeepLatest, Limits, sanitize

pytestmark = pytest.mark.timeout(60)

LIMITS = Limits(0.05, 0.2, (0.25, -0.35, 0.0), (0.8, 0.35, 0.5))
CENTRE = (0.5, 0.0, 0.25)


def test_valid_action_passes_unchanged() -> None:
    out = sanitize([0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 1.0], CENTRE, LIMITS, wall=7.0)
    assert out.action is not None and out.events == []
    assert out.action.tolist() == [0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 1.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_is_refused_with_an_event(bad: float) -> None:
    out = sanitize([0, 0, bad, 0, 0, 0, 0], CENTRE, LIMITS, wall=12.5)
    assert out.action is None
    assert [(e.kind, e.t_wall) for e in out.events] == [("non_finite", 12.5)]
    assert "indices [2]" in out.events[0].detail


@pytest.mark.parametrize("bad", [[0.0] * 6, [0.0] * 8, [[0.0] * 7], "abc", None])
def test_bad_shape_is_refused(bad: object) -> None:
    out = sanitize(bad, CENTRE, LIMITS, wall=1.0)
    assert out.action is None and out.events[0].kind == "bad_shape"


def test_per_step_clipping() -> None:
    out = sanitize([2.0, 0, 0, -3.0, 0, 0, 1.5], CENTRE, LIMITS, wall=1.0)
    assert out.action is not None
    assert out.action.tolist() == [1.0, 0, 0, -1.0, 0, 0, 1.0]
    assert [e.kind for e in out.events] == ["clipped"]


def test_workspace_clips_the_target_into_the_box() -> None:
    # 2 cm below the ceiling: a full step up would overshoot by 3 cm
    out = sanitize([0, 0, 1.0, 0, 0, 0, 0], (0.5, 0.0, 0.48), LIMITS, wall=1.0)
    assert out.action is not None
    assert out.action[2] == pytest.approx(0.4)  # 0.02 m / 0.05 m per unit
    assert [e.kind for e in out.events] == ["workspace"]


def test_outside_the_box_moves_back_at_most_one_step() -> None:
    out = sanitize([0, 0, 0, 0, 0, 0, 0], (0.5, 0.0, 0.7), LIMITS, wall=1.0)
    assert out.action is not None and out.action[2] == pytest.approx(-1.0)


@given(
    st.lists(st.floats(-5, 5), min_size=7, max_size=7),
    st.tuples(st.floats(0.0, 1.0), st.floats(-0.5, 0.5), st.floats(-0.2, 0.7)),
)
def test_sanitized_actions_are_bounded_and_land_in_the_box(action, pos) -> None:
    out = sanitize(action, pos, LIMITS, wall=0.0)
    assert out.action is not None
    assert np.all(np.abs(out.action) <= 1.0)
    target = np.array(pos) + out.action[:3] * LIMITS.max_translation_m
    inside = np.all(
        (np.array(pos) >= LIMITS.workspace_low) & (np.array(pos) <= LIMITS.workspace_high)
    )
    if inside:
        assert np.all(target >= np.array(LIMITS.workspace_low) - 1e-9)
        assert np.all(target <= np.array(LIMITS.workspace_high) + 1e-9)


def test_limits_reject_an_empty_box() -> None:
    with pytest.raises(ValueError, match="below"):
        Limits(0.05, 0.2, (0.5, 0.0, 0.0), (0.4, 1.0, 1.0))


def test_hold_keeps_the_gripper() -> None:
    assert safety.hold_action(1.0).tolist() == [0, 0, 0, 0, 0, 0, 1.0]
    assert safety.hold_action(7.0)[6] == 1.0


def test_out_of_range_names_components() -> None:
    assert safety.out_of_range([0, 1.0, -1.0, 1.5, 0, -2, 0]) == [3, 5]


def test_estop_latch_is_cleared_only_by_clear() -> None:
    latch = EStopLatch()
    assert latch.trip("button", now=10.0)
    assert not latch.trip("again", now=11.0), "a second trip keeps the first reason"
    assert latch.active and latch.reason == "button" and latch.since == 10.0
    assert latch.clear() and not latch.active and latch.reason is None
    assert not latch.clear()


def test_watchdog_with_fake_clock() -> None:
    slot: KeepLatest[str] = KeepLatest()
    assert slot.fresh(now=0.0, max_age=0.25) is None
    slot.put("a", now=100.0)
    assert slot.fresh(now=100.25, max_age=0.25) == "a"
    assert slot.fresh(now=100.2501, max_age=0.25) is None
    slot.put("b", now=101.0)
    assert slot.fresh(now=101.1, max_age=0.25) == "b" and slot.received_at == 101.0
    slot.clear()
    assert slot.fresh(now=101.1, max_age=0.25) is None
    assert safety.is_stale(0.0, 0.3, 0.25) and not safety.is_stale(0.0, 0.2, 0.25)
