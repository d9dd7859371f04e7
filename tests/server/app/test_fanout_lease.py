"""Pure units: keep-latest mailboxes and hubs; the control lease with a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from server.fanout import Hub, Mailbox
from server.lease import LeaseTable


def test_mailbox_keeps_only_the_newest_value_per_key() -> None:
    async def scenario() -> None:
        box = Mailbox()
        for i in range(100):
            box.put_latest("frame", i)
        box.put_latest("state", "a")
        box.put_latest("frame", 100)
        assert box.pending() == 2
        assert await box.next_batch() == ["a", 100]
        assert box.stats.replaced == 100 and box.stats.delivered == 2

    asyncio.run(scenario())


def test_mailbox_events_are_bounded_and_ordered() -> None:
    async def scenario() -> None:
        box = Mailbox(event_limit=3)
        for i in range(5):
            box.put_event(i)
        box.put_latest("s", "x")
        assert await box.next_batch() == [2, 3, 4, "x"]
        assert box.stats.evicted == 2

    asyncio.run(scenario())


def test_mailbox_waits_and_wakes_and_closes() -> None:
    async def scenario() -> None:
        box = Mailbox()
        waiter = asyncio.ensure_future(box.next_batch())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        box.put_latest("k", 1)
        assert await asyncio.wait_for(waiter, 1) == [1]
        waiter = asyncio.ensure_future(box.next_batch())
        await asyncio.sleep(0.01)
        box.close()
        assert await asyncio.wait_for(waiter, 1) == []
        box.put_latest("k", 2)  # ignored once closed
        assert box.pending() == 0

    asyncio.run(scenario())


def test_hub_publishes_to_every_subscriber_without_blocking() -> None:
    async def scenario() -> None:
        hub = Hub("t")
        (a_id, a), (_, b) = hub.subscribe(), hub.subscribe()
        for i in range(1000):  # nobody reads: memory stays at one value per key
            hub.publish_latest("frame", i)
        hub.publish_event("summary")
        assert a.pending() == 2 and b.pending() == 2
        hub.unsubscribe(a_id)
        assert a.closed and len(hub) == 1
        assert await b.next_batch() == ["summary", 999]

    asyncio.run(scenario())


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_lease_claim_deny_touch_expire_release() -> None:
    clock = Clock()
    leases = LeaseTable(5.0, clock)
    assert leases.claim("r", "c1", "alice").granted
    denied = leases.claim("r", "c2", "bob")
    assert not denied.granted and denied.holder and denied.holder.operator == "alice"
    assert "alice" in denied.reason
    assert leases.claim("other", "c2", "bob").granted  # leases are per robot
    clock.t += 4.0
    assert leases.touch("r", "c1") and not leases.touch("r", "c2")
    clock.t += 4.0  # 4 s after the last input: still held
    assert leases.holds("r", "c1") and leases.remaining_s("r") == pytest.approx(1.0)
    clock.t += 1.5  # 5.5 s without input: expired
    assert leases.holder("r") is None and not leases.touch("r", "c1")
    assert leases.claim("r", "c2", "bob").granted
    assert not leases.release("r", "c1") and leases.release("r", "c2")
    assert leases.claim("r", "c1", "alice").granted
    assert sorted(leases.release_all("c2")) == ["other"]
    assert [lease.robot_id for lease in leases.snapshot()] == ["r"]


def test_reclaim_by_holder_keeps_since() -> None:
    clock = Clock()
    leases = LeaseTable(1.0, clock)
    first = leases.claim("r", "c1", "alice").holder
    clock.t += 0.5
    again = leases.claim("r", "c1", "alice").holder
    assert first and again and again.since == first.since and again.last_input == clock.t
    with pytest.raises(ValueError, match="positive"):
        LeaseTable(0.0)
