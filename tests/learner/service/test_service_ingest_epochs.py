"""Ingest after a bridge restart whose first messages were missed (issue 17, defect 2).

The restart is recognised by the sender epoch, never by ``seq == 0``.
"""

from __future__ import annotations

from learner.service.assembly import EpisodeAssembler
from learner.service.ingest import Delivery, Ingest
from tandem.messages import Sequencer
from tandem.wire import encode
from tests.learner.service.helpers import end, start, step

ROUTE = {"demos_require_success": True, "rlif_penalty": None}


def _feed(ingest: Ingest, msg_images, epoch: str) -> None:
    msg, images = msg_images
    msg = msg.model_copy(update={"epoch": epoch})
    ingest.handle(encode(msg, {f"cam/{k}": v for k, v in images.items()}))


def test_restart_with_missed_first_messages_keeps_every_later_step() -> None:
    got: list[Delivery] = []
    ingest = Ingest(["tcp://127.0.0.1:1"], got.append, assembler=EpisodeAssembler(),
                    ingest_log=None, route_kwargs=ROUTE)  # fmt: skip
    old, new = Sequencer().epoch, Sequencer().epoch
    _feed(ingest, start("a", "before", seq=0), old)
    for t in range(20):
        _feed(ingest, step("a", "before", t, seq=t), old)
    _feed(ingest, end("a", "before", 20, seq=1), old)
    # Restarted bridge: step seq 0..2 and episode seq 0..1 (a short episode) were missed.
    _feed(ingest, start("a", "after", seq=2), new)
    for t in range(6):
        _feed(ingest, step("a", "after", t, seq=3 + t), new)
    _feed(ingest, end("a", "after", 6, seq=3), new)
    assert [sum(len(seg) for seg in d.routed.online) for d in got] == [20, 6]
    totals = ingest.subscriber.seq_totals()
    assert totals.duplicates == 0 and totals.restarts == 2 and totals.missing == 3 + 2
