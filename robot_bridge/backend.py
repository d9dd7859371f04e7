"""Robot backends: one interface over the MuJoCo sim, a real arm over ZeroMQ, and a mock.

``robot_bridge.factory.make_backend(spec, settings)`` builds one (the ZeroMQ backend is in
``robot_bridge.zmq_backend``). Every backend runs the safety filter (``robot_bridge.safety``)
before an action reaches the arm and returns the action it actually applied.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from robot_bridge.arm_client import LinkError
from robot_bridge.driver import ArmDriver, DriverError
from robot_bridge.mock import MockDriver, mock_expert
from robot_bridge.safety import Limits, hold_action, sanitize
from robot_bridge.types import ActionSpec, ObservationSpec, RobotState, TaskSignals
from tandem.messages import SafetyEvent
from tandem.messages.arm import ArmSpec
from tandem.settings import BridgeSettings

log = logging.getLogger(__name__)

BackendError = DriverError
Expert = Callable[[dict[str, np.ndarray]], np.ndarray]
__all__ = ["Applied", "BackendError", "LinkError", "RobotBackend"]


@dataclass
class Applied:
    """What ``apply`` did: the action actually applied (7,) and the safety events.

    ``refused`` means the requested action was invalid and a hold was applied instead.
    """

    action: np.ndarray
    refused: bool = False
    events: list[SafetyEvent] = field(default_factory=list)


class RobotBackend(ABC):
    """A robot the bridge can drive. Specs are available before ``connect``.

    ``simulated``: the robot is a simulation (no hardware can move); False for anything else,
    a robot reached over ZeroMQ included, whatever it says it drives.
    """

    name: str
    simulated: bool = False

    @property
    @abstractmethod
    def observation_spec(self) -> ObservationSpec: ...

    @property
    @abstractmethod
    def action_spec(self) -> ActionSpec: ...

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def reset(self, randomize: bool = False, seed: int | None = None) -> RobotState:
        """Home the robot (and re-randomise a simulated scene); return the first observation."""

    @abstractmethod
    def observe(self) -> RobotState:
        """Measure the robot now, cameras included."""

    @abstractmethod
    def apply(self, action: Any) -> Applied:
        """Validate, clip and apply one 7-D normalised action (see ``ActionSpec``)."""

    @abstractmethod
    def signals(self) -> TaskSignals:
        """Reward and success after the last applied action (zero/False for a real arm)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the arm now."""

    @property
    def link_ok(self) -> bool:
        """False while the robot cannot be reached (only remote backends lose a link)."""
        return True

    def probe(self) -> bool:
        """Try to restore a lost link; True when the robot answers."""
        return True

    def expert(self) -> Expert | None:
        """The task's scripted expert when there is one."""
        return None

    def __enter__(self) -> RobotBackend:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()


class DriverBackend(RobotBackend):
    """A backend over an ``ArmDriver``: scaling of normalised actions, safety, task signals."""

    def __init__(self, name: str, driver: ArmDriver, limits: Limits) -> None:
        self.name = name
        self.driver = driver
        self.limits = limits
        self._state: RobotState | None = None
        self._gripper_cmd = -1.0

    @property
    def observation_spec(self) -> ObservationSpec:
        spec = self.driver.spec
        cams = {k: (v[0], v[1], v[2]) for k, v in spec.cameras.items()}
        return ObservationSpec(state_dim=spec.state_dim, cameras=cams)

    @property
    def action_spec(self) -> ActionSpec:
        return ActionSpec(self.limits.max_translation_m, self.limits.max_rotation_rad)

    def connect(self) -> None:
        self.driver.connect()
        self._state = self.driver.read_state(images=False)

    def close(self) -> None:
        self.driver.close()

    def reset(self, randomize: bool = False, seed: int | None = None) -> RobotState:
        self.driver.home(randomize=randomize, seed=seed)
        self._gripper_cmd = -1.0
        return self.observe()

    def observe(self) -> RobotState:
        self._state = self.driver.read_state(images=True)
        return self._state

    def apply(self, action: Any) -> Applied:
        if self._state is None:
            self._state = self.driver.read_state(images=False)
        checked = sanitize(action, self._state.ee_pos, self.limits, time.time())
        refused = checked.action is None
        act = hold_action(self._gripper_cmd) if checked.action is None else checked.action
        self._state = self.driver.step(
            act[:3] * self.limits.max_translation_m, act[3:6] * self.limits.max_rotation_rad,
            float(act[6]),
        )  # fmt: skip
        self._gripper_cmd = float(act[6])
        return Applied(act, refused, checked.events)

    def signals(self) -> TaskSignals:
        if self._state is None:
            return TaskSignals()
        return TaskSignals(self._state.reward, self._state.success)

    def stop(self) -> None:
        self.driver.stop()

    @property
    def gripper_command(self) -> float:
        """The last gripper command applied (-1 open .. +1 closed)."""
        return self._gripper_cmd


class SimBackend(DriverBackend):
    """The MuJoCo tasks of ``sim``."""

    simulated = True

    def __init__(self, task: str, settings: BridgeSettings) -> None:
        from robot_bridge.sim_driver import SimDriver

        driver = SimDriver(
            task, image_size=settings.image_size, cameras=tuple(settings.cameras),
            horizon=settings.horizon, max_translation_m=settings.max_translation_m,
            max_rotation_rad=settings.max_rotation_rad, arm_timeout_s=settings.arm_timeout_s,
        )  # fmt: skip
        super().__init__(f"sim:{task}", driver, limits_from(settings))
        self._sim_driver = driver

    def expert(self) -> Expert | None:
        return self._sim_driver.expert()


class MockBackend(DriverBackend):
    """The kinematic fake of ``robot_bridge.mock`` (reach task with a scripted expert)."""

    simulated = True

    def __init__(self, settings: BridgeSettings) -> None:
        driver = MockDriver(
            image_size=settings.image_size, cameras=tuple(settings.cameras),
            max_translation_m=settings.max_translation_m,
            max_rotation_rad=settings.max_rotation_rad, arm_timeout_s=settings.arm_timeout_s,
        )  # fmt: skip
        super().__init__("mock", driver, limits_from(settings))

    def expert(self) -> Expert | None:
        return mock_expert(self.limits.max_translation_m)


def limits_from(settings: BridgeSettings) -> Limits:
    low, high = settings.workspace_low, settings.workspace_high
    return Limits(
        settings.max_translation_m, settings.max_rotation_rad,
        (low[0], low[1], low[2]), (high[0], high[1], high[2]),
    )  # fmt: skip


def expert_for_spec(spec: ArmSpec, max_translation_m: float) -> Expert | None:
    """The scripted expert matching a driver's spec (mock reach or a sim task)."""
    if spec.driver == "mock":
        return mock_expert(max_translation_m)
    if spec.driver.startswith("sim:") and spec.task:
        import sim

        return sim.expert_for(spec.task)
    return None
