"""Per-client delivery that never grows a queue for a slow client.

A ``Mailbox`` belongs to one WebSocket client. Values published under a
*latest* key replace the previous unsent value with the same key (robot state,
camera frames, live rollout samples: only the newest matters). Values
published as *events* (episode summaries, metric batches) go to a small
bounded queue that drops the oldest when full. The client's sender task
awaits ``next_batch`` and sends what it gets, so publishing never blocks on a
client, and a stalled client costs at most one value per key plus the event
queue.

A ``Hub`` is the set of mailboxes subscribed to one stream (telemetry, or one
camera). Everything runs on the server's event loop; nothing here is
thread-safe by design.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_EVENT_LIMIT = 256


@dataclass
class DeliveryStats:
    """Counters of one mailbox: values delivered and values dropped (replaced or evicted)."""

    delivered: int = 0
    replaced: int = 0
    evicted: int = 0


class Mailbox:
    """Keep-latest slots plus a bounded event queue for one client."""

    def __init__(self, event_limit: int = DEFAULT_EVENT_LIMIT) -> None:
        self._latest: dict[Hashable, Any] = {}
        self._events: deque[Any] = deque(maxlen=event_limit)
        self._ready = asyncio.Event()
        self._closed = False
        self.stats = DeliveryStats()

    def put_latest(self, key: Hashable, value: Any) -> None:
        """Set the newest value for ``key``; an unsent older one is dropped."""
        if self._closed:
            return
        if key in self._latest:
            self.stats.replaced += 1
            del self._latest[key]  # re-insert so delivery order follows arrival order
        self._latest[key] = value
        self._ready.set()

    def put_event(self, value: Any) -> None:
        """Queue a value that should not be coalesced; the oldest is evicted when full."""
        if self._closed:
            return
        if len(self._events) == self._events.maxlen:
            self.stats.evicted += 1
        self._events.append(value)
        self._ready.set()

    def close(self) -> None:
        """Wake the sender; ``next_batch`` then returns an empty list."""
        self._closed = True
        self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        return len(self._latest) + len(self._events)

    async def next_batch(self) -> list[Any]:
        """Wait until something is pending and take all of it (events first, then latest).

        Returns an empty list once the mailbox is closed.
        """
        while not self._closed and not self._latest and not self._events:
            self._ready.clear()
            await self._ready.wait()
        if self._closed:
            return []
        batch = [*self._events, *self._latest.values()]
        self._events.clear()
        self._latest.clear()
        self._ready.clear()
        self.stats.delivered += len(batch)
        return batch


@dataclass
class Hub:
    """Mailboxes subscribed to one stream; publishing is O(subscribers) and never blocks."""

    name: str
    event_limit: int = DEFAULT_EVENT_LIMIT
    _boxes: dict[int, Mailbox] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def subscribe(self) -> tuple[int, Mailbox]:
        box_id = next(self._ids)
        box = Mailbox(self.event_limit)
        self._boxes[box_id] = box
        return box_id, box

    def unsubscribe(self, box_id: int) -> None:
        box = self._boxes.pop(box_id, None)
        if box is not None:
            box.close()

    def publish_latest(self, key: Hashable, value: Any) -> None:
        for box in self._boxes.values():
            box.put_latest(key, value)

    def publish_event(self, value: Any) -> None:
        for box in self._boxes.values():
            box.put_event(value)

    def close_all(self) -> None:
        for box in self._boxes.values():
            box.close()
        self._boxes.clear()

    def mailboxes(self) -> list[Mailbox]:
        return list(self._boxes.values())

    def __len__(self) -> int:
        return len(self._boxes)


class Hubs:
    """The server's streams: one telemetry hub and one hub per watched (robot, camera).

    A camera hub lives while someone watches it (``release`` drops it with its last
    viewer). At most ``max_unknown_cameras`` hubs may exist for names no bridge has sent
    a frame for, so requests for bogus names cannot crowd out the real cameras.
    """

    def __init__(self, max_unknown_cameras: int = 64) -> None:
        self.telemetry = Hub("telemetry")
        self.max_unknown_cameras = max_unknown_cameras
        self._cameras: dict[tuple[str, str], Hub] = {}
        self._seen: set[tuple[str, str]] = set()

    def camera(self, robot_id: str, camera: str) -> Hub | None:
        """The hub of ``(robot_id, camera)``; None when too many unknown names are open."""
        key = (robot_id, camera)
        hub = self._cameras.get(key)
        if hub is None:
            if key not in self._seen and self._unknown_count() >= self.max_unknown_cameras:
                return None
            hub = self._cameras[key] = Hub(f"camera/{robot_id}/{camera}")
        return hub

    def release(self, robot_id: str, camera: str) -> None:
        """Forget the hub of ``(robot_id, camera)`` once nobody watches it."""
        hub = self._cameras.get((robot_id, camera))
        if hub is not None and len(hub) == 0:
            del self._cameras[(robot_id, camera)]

    def frame_hub(self, robot_id: str, camera: str) -> Hub | None:
        """A bridge sent a frame of ``camera``: the name is real; its hub if anyone watches."""
        self._seen.add((robot_id, camera))
        return self._cameras.get((robot_id, camera))

    def camera_count(self) -> int:
        return len(self._cameras)

    def _unknown_count(self) -> int:
        return sum(1 for key in self._cameras if key not in self._seen)

    def close_all(self) -> None:
        self.telemetry.close_all()
        for hub in self._cameras.values():
            hub.close_all()
