"""Plain data shared by drivers, backends and the loop."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTION_DIM = 7
PROPRIO_DIM = 14


@dataclass
class RobotState:
    """One measurement of the robot (and its task, for simulated drivers).

    ``state`` (float32, (state_dim,)) starts with the 14 proprioceptive numbers:
    ee position (m, base frame) 3, ee quaternion (w, x, y, z) 4, gripper opening
    (0 closed .. 1 open) 1, ee linear velocity (m/s) 3, ee angular velocity
    (rad/s) 3; task features follow. ``images`` are uint8 H x W x 3 RGB.
    ``t`` is the monotonic capture time in seconds.
    """

    state: np.ndarray
    ee_pos: np.ndarray
    ee_quat: np.ndarray
    gripper: float
    t: float
    reward: float = 0.0
    success: bool = False
    images: dict[str, np.ndarray] = field(default_factory=dict)
    stopped: bool = False

    def policy_input(self) -> dict[str, np.ndarray]:
        """The Gymnasium-style observation: ``{"state": ..., <camera>: image, ...}``."""
        return {"state": self.state, **self.images}


@dataclass(frozen=True)
class ObservationSpec:
    """Shapes of the observation, known before connecting."""

    state_dim: int
    cameras: dict[str, tuple[int, int, int]]


@dataclass(frozen=True)
class ActionSpec:
    """A 7-D action in [-1, 1]: ee delta xyz, delta rotation vector, gripper (-1 open, +1 closed).

    Translation is scaled by ``max_translation_m`` and rotation by
    ``max_rotation_rad`` per step (robot base frame).
    """

    max_translation_m: float
    max_rotation_rad: float
    dim: int = ACTION_DIM
    low: float = -1.0
    high: float = 1.0


@dataclass(frozen=True)
class TaskSignals:
    """What the backend can tell about the task after the last action."""

    reward: float = 0.0
    success: bool = False
