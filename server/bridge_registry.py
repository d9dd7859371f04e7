"""The configured bridges as the server knows them, shared by the link's parts.

Bridge ``i`` is ``settings.bridges[i]`` (its PUB) paired with
``settings.bridge_cmd_endpoints[i]`` (its command ROUTER). Its robot id is
learned from its first ``BridgeStatus``; a request without a robot id means
the first bridge. Also here: the link's counters and the guarded asyncio
tasks the link's parts run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tandem.messages import BridgeStatus

log = logging.getLogger(__name__)

RESTART_DELAY_S = 0.5


class BridgeError(RuntimeError):
    """A command could not be delivered or was not answered in time."""


@dataclass
class LinkStats:
    """Counters of the bridge link (``GET /api/state`` shows them)."""

    bad_messages: int = 0
    frames: int = 0
    steps: int = 0
    statuses: int = 0
    replies: int = 0
    stray_replies: int = 0
    refused_actions: int = 0
    metrics: int = 0


@dataclass
class BridgeInfo:
    index: int
    pub_endpoint: str
    cmd_endpoint: str
    robot_id: str | None = None
    status: BridgeStatus | None = None
    status_rx_mono: float = 0.0
    reset_requested: float | None = None  # Unix time the bridge entered await_reset


class BridgeRegistry:
    """Every configured bridge, found by robot id (the first one when none is given)."""

    def __init__(self, pub_endpoints: list[str], cmd_endpoints: list[str]) -> None:
        if len(pub_endpoints) != len(cmd_endpoints):
            raise ValueError(
                f"server.bridges has {len(pub_endpoints)} endpoints but "
                f"server.bridge_cmd_endpoints has {len(cmd_endpoints)}; "
                "they must pair up in order"
            )
        self.bridges = [
            BridgeInfo(i, pub, cmd)
            for i, (pub, cmd) in enumerate(zip(pub_endpoints, cmd_endpoints, strict=True))
        ]

    def robots(self) -> list[str]:
        """Robot ids seen so far, in bridge order."""
        return [b.robot_id for b in self.bridges if b.robot_id is not None]

    def default_robot(self) -> str | None:
        return self.bridges[0].robot_id if self.bridges else None

    def statuses(self) -> list[tuple[int, str, BridgeStatus | None, float | None]]:
        """(index, pub endpoint, latest status, its age in s) for every configured bridge."""
        now = time.monotonic()
        return [
            (b.index, b.pub_endpoint, b.status, now - b.status_rx_mono if b.status else None)
            for b in self.bridges
        ]

    def status(self, robot_id: str | None) -> BridgeStatus | None:
        bridge = self.find(robot_id)
        return bridge.status if bridge else None

    def resolve_robot(self, robot_id: str | None) -> str:
        """The robot id a request means (the first bridge's when not given)."""
        bridge = self.find(robot_id)
        if bridge is None:
            raise BridgeError(self.unknown(robot_id))
        return bridge.robot_id or robot_id or ""

    def bridge_key(self, robot_id: str | None, *, index: int | None = None) -> str:
        """A stable key of the bridge serving ``robot_id`` (or bridge ``index``), for leases.

        It does not change when the bridge's robot id becomes known.
        """
        bridge = self.bridges[index] if index is not None else self.find(robot_id)
        if bridge is None:
            raise BridgeError(self.unknown(robot_id))
        return f"bridge{bridge.index}"

    def find(self, robot_id: str | None) -> BridgeInfo | None:
        if not robot_id:
            return self.bridges[0] if self.bridges else None
        return next((b for b in self.bridges if b.robot_id == robot_id), None)

    def unknown(self, robot_id: str | None) -> str:
        if not self.bridges:
            return "no bridge is configured (server.bridges is empty)"
        return f"unknown robot {robot_id!r}; known: {self.robots()}"


class TaskSet:
    """Long-running asyncio loops that restart after a failure, and one-shot tasks."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        """Run ``loop`` until cancelled: a bug or socket error is logged and it restarts."""
        self._add(_guard(loop, name))

    def spawn_once(self, coro: Awaitable[None], what: str) -> None:
        """Run ``coro`` once; a failure is logged and disturbs nothing else."""

        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("%s failed", what)

        self._add(run())

    def _add(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


async def _guard(loop: Callable[[], Awaitable[None]], name: str) -> None:
    while True:
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the link alive; the traceback makes the fault visible
            log.exception("bridge link task %s failed; restarting it in 0.5 s", name)
        await asyncio.sleep(RESTART_DELAY_S)
