"""``make_backend``: the robot backend named by a ``--robot`` spec.

It lives apart from the interface (``robot_bridge.backend``) so that the interface imports no
implementation: ``zmq_backend`` builds on ``backend``, and only this module knows both.
"""

from __future__ import annotations

from robot_bridge.backend import MockBackend, RobotBackend, SimBackend
from robot_bridge.zmq_backend import ZmqBackend
from tandem.settings import BridgeSettings


def simulated(spec: str) -> bool:
    """Whether ``spec`` names a simulated robot (``RobotBackend.simulated`` of its backend)."""
    return spec == "mock" or spec.startswith("sim:")


def make_backend(spec: str, settings: BridgeSettings) -> RobotBackend:
    """Build the backend named by ``spec``: sim:lift, sim:drawer, mock or zmq://HOST:PORT."""
    if spec == "mock":
        return MockBackend(settings)
    if spec.startswith("sim:"):
        return SimBackend(spec.removeprefix("sim:"), settings)
    if spec.startswith("zmq://"):
        return ZmqBackend("tcp://" + spec.removeprefix("zmq://"), settings)
    raise ValueError(f"unknown robot {spec!r}; use sim:lift, sim:drawer, mock or zmq://HOST:PORT")
