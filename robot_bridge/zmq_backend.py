"""The real-arm backend: an arm-server reached over ZeroMQ (docs/arm_protocol.md)."""

from __future__ import annotations

import logging
import time

import zmq

from robot_bridge.arm_client import ArmClient, LinkError, RemoteDriver
from robot_bridge.backend import DriverBackend, Expert, expert_for_spec, limits_from
from robot_bridge.driver import DriverError
from robot_bridge.types import ObservationSpec
from tandem.messages.arm import ArmSpec
from tandem.settings import BridgeSettings

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 2.0


class ZmqBackend(DriverBackend):
    """An arm-server behind ``endpoint``.

    The specs come from the server's ``hello`` (asked for on first use, before
    ``connect``). The link counts as lost when no reply arrived for
    ``link_timeout_s``; ``probe`` brings it back once the server answers again
    with a compatible spec.
    """

    def __init__(
        self, endpoint: str, settings: BridgeSettings, *, context: zmq.Context | None = None
    ) -> None:
        self.client = ArmClient(endpoint, settings.arm_request_timeout_s, context=context)
        self.remote = RemoteDriver(self.client)
        super().__init__(
            f"zmq://{endpoint.removeprefix('tcp://')}", self.remote, limits_from(settings)
        )
        self.link_timeout_s = settings.link_timeout_s
        self._hello_timeout_s = max(settings.arm_request_timeout_s, 0.2)
        self._lost = False

    def _spec(self) -> ArmSpec:
        try:
            return self.remote.spec
        except DriverError:
            return self.remote.hello(self._hello_timeout_s)

    @property
    def observation_spec(self) -> ObservationSpec:
        spec = self._spec()
        cams = {k: (v[0], v[1], v[2]) for k, v in spec.cameras.items()}
        return ObservationSpec(state_dim=spec.state_dim, cameras=cams)

    def connect(self) -> None:
        """Hello, first measurement and a limits check, with a lenient timeout (startup only)."""
        saved = self.client.timeout_s
        self.client.timeout_s = max(saved, CONNECT_TIMEOUT_S)
        try:
            self._spec()
            super().connect()
            self.observe()
        finally:
            self.client.timeout_s = saved
        self._check_limits(self.remote.spec)

    def _check_limits(self, spec: ArmSpec) -> None:
        for ours, theirs, what in (
            (self.limits.max_translation_m, spec.max_translation_m, "translation"),
            (self.limits.max_rotation_rad, spec.max_rotation_rad, "rotation"),
        ):
            if ours > theirs * (1 + 1e-6):
                raise DriverError(
                    f"bridge {what} limit {ours} exceeds the arm-server's {theirs}; "
                    "lower the bridge setting"
                )

    @property
    def link_ok(self) -> bool:
        last = self.client.last_ok
        if self._lost or last is None:
            return False
        if time.monotonic() - last > self.link_timeout_s:
            self._lost = True
            log.error("arm link lost: no reply for %.2f s", time.monotonic() - last)
        return not self._lost

    def probe(self) -> bool:
        """Ask the arm-server for hello; restore the link when its spec still matches."""
        known = self.remote.spec
        try:
            spec = self.remote.hello(self._hello_timeout_s)
        except LinkError:
            return False
        except DriverError as exc:
            log.warning("arm-server answered hello with an error: %s", exc)
            return False
        if (spec.state_dim, spec.cameras) != (known.state_dim, known.cameras):
            log.error("arm-server came back with a different spec %s; not resuming", spec)
            return False
        if self._lost:
            log.info("arm link restored (%s)", spec.driver)
        self._lost = False
        return True

    def expert(self) -> Expert | None:
        return expert_for_spec(self._spec(), self.limits.max_translation_m)
