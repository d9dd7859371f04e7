"""The small interface a lab implements for its arm (Franka, UR, xArm, ...).

An ``ArmDriver`` talks to one arm in physical units: metres and radians in
the robot base frame, gripper command -1 (open) .. +1 (closed). The
arm-server (``robot_bridge.arm_server``) hosts any driver behind the ZeroMQ
arm protocol, and ``robot_bridge.backend.DriverBackend`` runs one in-process.
Drivers need not be thread-safe: one thread calls them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from robot_bridge.types import RobotState
from tandem.messages.arm import ArmSpec


class DriverError(RuntimeError):
    """The driver could not do what was asked (the text says why)."""


class ArmDriver(ABC):
    """One arm. ``spec`` is available before ``connect``."""

    @property
    @abstractmethod
    def spec(self) -> ArmSpec:
        """Driver name, state size, cameras and per-step limits."""

    @abstractmethod
    def connect(self) -> None:
        """Open the connection to the arm (idempotent)."""

    @abstractmethod
    def close(self) -> None:
        """Stop and release the arm (idempotent)."""

    @abstractmethod
    def read_state(self, images: bool = True) -> RobotState:
        """Measure the arm now; with ``images`` include the driver's own cameras."""

    @abstractmethod
    def move_ee(self, delta_pos: np.ndarray, delta_rot: np.ndarray) -> None:
        """Move the end effector by ``delta_pos`` (3,) m and rotation vector ``delta_rot`` (3,) rad.

        A simulated driver advances its simulation by one control step here.
        """

    @abstractmethod
    def set_gripper(self, command: float) -> None:
        """Command the gripper: -1 fully open .. +1 fully closed."""

    @abstractmethod
    def home(self, randomize: bool = False, seed: int | None = None) -> None:
        """Go to the home pose; a simulated driver also resets (maybe randomises) its scene."""

    @abstractmethod
    def stop(self) -> None:
        """Stop all motion now and hold."""

    def apply(self, delta_pos: np.ndarray, delta_rot: np.ndarray, gripper: float) -> None:
        """One control step: gripper command, then the end-effector delta."""
        self.set_gripper(gripper)
        self.move_ee(delta_pos, delta_rot)

    def step(self, delta_pos: np.ndarray, delta_rot: np.ndarray, gripper: float) -> RobotState:
        """``apply`` and measure the result (without images)."""
        self.apply(delta_pos, delta_rot, gripper)
        return self.read_state(images=False)
