"""Safety next to the actuator: pure functions and two tiny state holders.

Everything takes the time as an argument (``now``: monotonic seconds, ``wall``:
Unix seconds) so tests drive it with a fake clock. Actions are the bridge's
7-D normalised actions (see ``robot_bridge.types.ActionSpec``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import numpy as np

from robot_bridge.types import ACTION_DIM
from tandem.messages import SafetyEvent

SafetyKind = Literal[
    "non_finite", "bad_shape", "clipped", "workspace", "estop", "stale_command", "link_lost"
]
T = TypeVar("T")
_EPS = 1e-9


@dataclass(frozen=True)
class Limits:
    """Per-step limits and the workspace box (metres, robot base frame)."""

    max_translation_m: float
    max_rotation_rad: float
    workspace_low: tuple[float, float, float]
    workspace_high: tuple[float, float, float]

    def __post_init__(self) -> None:
        if any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high, strict=True)):
            raise ValueError(
                f"workspace_low {self.workspace_low} must be below workspace_high "
                f"{self.workspace_high} on every axis"
            )


@dataclass
class Checked:
    """Result of ``sanitize``: the action to apply (None: refuse and hold) and what happened."""

    action: np.ndarray | None
    events: list[SafetyEvent] = field(default_factory=list)


def event(kind: SafetyKind, detail: str, wall: float) -> SafetyEvent:
    return SafetyEvent(t_wall=wall, kind=kind, detail=detail)


def check_shape_finite(action: object, wall: float) -> tuple[np.ndarray | None, SafetyEvent | None]:
    """Return the action as float64 (7,) or (None, event) when the shape is wrong or not finite."""
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return None, event("bad_shape", f"action is not numeric: {exc}", wall)
    if arr.shape != (ACTION_DIM,):
        return None, event("bad_shape", f"action shape {arr.shape}, expected ({ACTION_DIM},)", wall)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        return None, event("non_finite", f"action has NaN/inf at indices {bad.tolist()}", wall)
    return arr, None


def clip_step(action: np.ndarray, wall: float) -> tuple[np.ndarray, SafetyEvent | None]:
    """Clip every component into [-1, 1] (the per-step limits after scaling)."""
    clipped = np.clip(action, -1.0, 1.0)
    if np.max(np.abs(clipped - action)) <= _EPS:
        return action, None
    idx = np.flatnonzero(np.abs(clipped - action) > _EPS).tolist()
    return clipped, event("clipped", f"action components {idx} clipped to [-1, 1]", wall)


def clip_workspace(
    action: np.ndarray, ee_pos: Sequence[float] | np.ndarray, limits: Limits, wall: float
) -> tuple[np.ndarray, SafetyEvent | None]:
    """Clip the target ee position ``ee_pos + a[:3] * max_translation_m`` into the box.

    The translation part is rewritten so the target lands inside the box (and
    stays within [-1, 1]: an arm outside the box moves back at most one full step).
    """
    pos = np.asarray(ee_pos, dtype=np.float64)
    target = pos + action[:3] * limits.max_translation_m
    inside = np.clip(target, limits.workspace_low, limits.workspace_high)
    if np.max(np.abs(inside - target)) <= _EPS:
        return action, None
    out = action.copy()
    out[:3] = np.clip((inside - pos) / limits.max_translation_m, -1.0, 1.0)
    detail = f"target {np.round(target, 4).tolist()} clipped into workspace box"
    return out, event("workspace", detail, wall)


def sanitize(
    action: object, ee_pos: Sequence[float] | np.ndarray, limits: Limits, wall: float
) -> Checked:
    """Shape/finite check, per-step clipping, then the workspace box; pure."""
    arr, bad = check_shape_finite(action, wall)
    if arr is None:
        assert bad is not None
        return Checked(None, [bad])
    events: list[SafetyEvent] = []
    arr, ev = clip_step(arr, wall)
    if ev:
        events.append(ev)
    arr, ev = clip_workspace(arr, ee_pos, limits, wall)
    if ev:
        events.append(ev)
    return Checked(arr, events)


def hold_action(gripper_cmd: float) -> np.ndarray:
    """Zero motion with the gripper kept where it was commanded (a grasp stays a grasp)."""
    action = np.zeros(ACTION_DIM)
    action[6] = float(np.clip(gripper_cmd, -1.0, 1.0))
    return action


def out_of_range(action: Sequence[float], tol: float = 1e-6) -> list[int]:
    """Indices of components outside [-1, 1] (operator commands are refused, not clipped)."""
    return [i for i, x in enumerate(action) if abs(x) > 1.0 + tol]


class EStopLatch:
    """Latched e-stop: ``trip`` sets it, only ``clear`` resets it."""

    def __init__(self) -> None:
        self.active = False
        self.reason: str | None = None
        self.since: float | None = None

    def trip(self, reason: str, now: float) -> bool:
        """Latch; return True when this call latched it (False if already latched)."""
        if self.active:
            return False
        self.active, self.reason, self.since = True, reason, now
        return True

    def clear(self) -> bool:
        """Unlatch; return False when it was not latched."""
        was = self.active
        self.active, self.reason, self.since = False, None, None
        return was


class KeepLatest(Generic[T]):
    """Keep-latest slot stamped with a time (monotonic seconds) for a watchdog.

    The bridge stamps teleop actions with the operator's input time on its clock
    (``tandem.clock``), so an action ages from when it was made, not received.
    """

    def __init__(self) -> None:
        self._value: T | None = None
        self._t: float | None = None

    def put(self, value: T, now: float) -> None:
        self._value, self._t = value, now

    def clear(self) -> None:
        self._value, self._t = None, None

    def fresh(self, now: float, max_age: float) -> T | None:
        """The value if one arrived within ``max_age`` seconds of ``now``, else None."""
        if self._t is None or is_stale(self._t, now, max_age):
            return None
        return self._value

    @property
    def received_at(self) -> float | None:
        return self._t


def is_stale(t_received: float, now: float, max_age: float) -> bool:
    """The stale-command watchdog: older than ``max_age`` seconds is stale."""
    return now - t_received > max_age
