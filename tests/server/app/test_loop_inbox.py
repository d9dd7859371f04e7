"""The hand-off from the streams thread to the server's loop stays bounded and in order."""

from __future__ import annotations

import asyncio
import threading

from server.bridge_streams import LoopInbox
from tandem.subscriber import Malformed, Received
from tandem.wire import WireError


def received(i: int) -> Received:
    return Received(source=0, topic="status", decoded=None, parts=(str(i).encode(),))


def test_a_stalled_loop_keeps_only_the_newest_messages_and_reports_in_order() -> None:
    loop = asyncio.new_event_loop()
    seen: list[str] = []
    inbox = LoopInbox(
        loop,
        lambda batch: seen.extend(bytes(r.parts[0]).decode() for r in batch),
        lambda bad: seen.append(f"bad:{bad.error}"),
        limit=5,
    )

    def producer() -> None:  # the streams thread, while the loop is busy elsewhere
        inbox.on_batch([received(i) for i in range(4)])
        inbox.on_malformed(Malformed(0, b"step", WireError("x")))
        inbox.on_batch([received(i) for i in range(4, 8)])

    thread = threading.Thread(target=producer)
    thread.start()
    thread.join()
    try:
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    assert seen == ["bad:x", "4", "5", "6", "7"]
    assert inbox.dropped == 4
