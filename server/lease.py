"""The control lease: at most one operator client drives a robot at a time.

Pure state with an injected clock so that timeouts are unit-testable. A
lease is held by one *client* (one WebSocket connection, identified by an
opaque id) on behalf of an operator. It expires ``timeout_s`` after the
holder's last input; a claim by another client succeeds only once the lease
is free or expired. The control router releases the lease when its
connection closes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds the lease of one robot and since when (monotonic seconds)."""

    robot_id: str
    client_id: str
    operator: str
    since: float
    last_input: float


@dataclass(frozen=True)
class ClaimResult:
    granted: bool
    holder: LeaseInfo | None
    reason: str = ""


class LeaseTable:
    """Control leases by robot id (``""`` stands for the default robot)."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if timeout_s <= 0:
            raise ValueError(f"lease timeout must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self._clock = clock
        self._leases: dict[str, LeaseInfo] = {}

    def holder(self, robot_id: str) -> LeaseInfo | None:
        """The current, unexpired holder of ``robot_id``'s lease (expired ones are dropped)."""
        lease = self._leases.get(robot_id)
        if lease is not None and self._clock() - lease.last_input > self.timeout_s:
            del self._leases[robot_id]
            return None
        return lease

    def claim(self, robot_id: str, client_id: str, operator: str) -> ClaimResult:
        """Grant the lease to ``client_id`` unless another live client holds it."""
        current = self.holder(robot_id)
        now = self._clock()
        if current is not None and current.client_id != client_id:
            return ClaimResult(
                False, current, f"control is held by {current.operator} on another client"
            )
        since = current.since if current is not None else now
        lease = LeaseInfo(robot_id, client_id, operator, since, now)
        self._leases[robot_id] = lease
        return ClaimResult(True, lease)

    def touch(self, robot_id: str, client_id: str) -> bool:
        """Record input from ``client_id``; False when it does not hold a live lease."""
        current = self.holder(robot_id)
        if current is None or current.client_id != client_id:
            return False
        self._leases[robot_id] = LeaseInfo(
            robot_id, client_id, current.operator, current.since, self._clock()
        )
        return True

    def holds(self, robot_id: str, client_id: str) -> bool:
        current = self.holder(robot_id)
        return current is not None and current.client_id == client_id

    def release(self, robot_id: str, client_id: str) -> bool:
        """Release if ``client_id`` holds it; returns whether it did."""
        current = self._leases.get(robot_id)
        if current is None or current.client_id != client_id:
            return False
        del self._leases[robot_id]
        return True

    def release_all(self, client_id: str) -> list[str]:
        """Release every lease of a client (on disconnect); returns the robot ids."""
        robots = [r for r, lease in self._leases.items() if lease.client_id == client_id]
        for robot_id in robots:
            del self._leases[robot_id]
        return robots

    def remaining_s(self, robot_id: str) -> float | None:
        lease = self.holder(robot_id)
        if lease is None:
            return None
        return max(0.0, self.timeout_s - (self._clock() - lease.last_input))

    def snapshot(self) -> list[LeaseInfo]:
        return [lease for r in list(self._leases) if (lease := self.holder(r)) is not None]
