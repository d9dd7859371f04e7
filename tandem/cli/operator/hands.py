"""The scripted operator's hands: the sim task's expert, corrected for the action in flight.

The operator sees step ``t`` (state before the action, and the action applied)
on the telemetry stream a few milliseconds after the bridge applied it; what it
sends now is applied at step ``t + 1``. Like a person who knows where the arm
is going, it predicts the state after the action in flight and asks the expert
about that state. Without the prediction the expert's deadbeat gain would
oscillate.

The sim state layout (``sim.tasks``): ``[0:3]`` grip-site position,
``[3:7]`` orientation (w, x, y, z), ``[7]`` opening (0 closed .. 1 open), from
``[14]`` the task's object features, position first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from sim.experts import expert_for
from sim.rotations import quat_mul, rotvec_to_quat

POS, QUAT, OPENING, OBJECT = slice(0, 3), slice(3, 7), 7, slice(14, 17)
HELD_OPENING = 0.6  # jaws closed further than this on a closing command: something is held


class HandsError(ValueError):
    """The robot is not one the scripted operator can drive."""


def task_of(robot_spec: str) -> str:
    """``sim:lift`` -> ``lift``; anything that is not a sim task is refused."""
    kind, _, task = robot_spec.partition(":")
    if kind != "sim" or not task:
        raise HandsError(
            f"the scripted operator drives simulated tasks only (sim:lift, sim:drawer); "
            f"this robot is {robot_spec!r}"
        )
    return task


def predict(
    state: ArrayLike, action: ArrayLike, max_translation_m: float, max_rotation: float
) -> np.ndarray:
    """The state after ``action``: the hand moves by it, and so does a held object."""
    s = np.array(state, dtype=np.float64)
    a = np.asarray(action, dtype=np.float64)
    step = a[:3] * max_translation_m
    s[POS] += step
    q = quat_mul(rotvec_to_quat(a[3:6] * max_rotation), s[QUAT])
    s[QUAT] = q / np.linalg.norm(q)
    if a[6] > 0.0 and s[OPENING] < HELD_OPENING and len(s) >= OBJECT.stop:
        s[OBJECT] += step
    return s


class ExpertHands:
    """``act(state, in_flight)`` -> the expert's action for the state after ``in_flight``."""

    def __init__(self, robot_spec: str, max_translation_m: float, max_rotation_rad: float) -> None:
        self.task = task_of(robot_spec)
        try:
            self._expert: Callable[[dict[str, np.ndarray]], np.ndarray] = expert_for(self.task)
        except ValueError as exc:
            raise HandsError(str(exc)) from None
        self._limits = (max_translation_m, max_rotation_rad)

    def act(self, state: ArrayLike, in_flight: ArrayLike) -> list[float]:
        ahead = predict(state, in_flight, *self._limits)
        return [float(x) for x in self._expert({"state": ahead})]
