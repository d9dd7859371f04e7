"""Sequence tracking for streams that must not lose data.

A stream is one (sender, topic). Its messages carry ``seq`` (consecutive from 0)
and ``epoch`` (a random id the sender draws once per process, see
``tandem.messages.Sequencer``). Order, gaps and duplicates are judged within one
epoch; a new epoch is a sender restart, whatever its first ``seq`` is, so a
restarted sender whose first messages were missed is never taken for a
duplicate. Messages of an earlier epoch that arrive late (a backlog of the
killed process) are judged against that epoch's own last ``seq``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tandem.messages.base import LEGACY_EPOCH

log = logging.getLogger(__name__)

MAX_EPOCHS = 16  # epochs remembered per stream (the oldest is forgotten first)


@dataclass
class SeqStats:
    received: int = 0
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0
    restarts: int = 0
    last_seq: int | None = None
    epoch: str | None = None  # of the last accepted message


@dataclass
class _Stream:
    stats: SeqStats = field(default_factory=SeqStats)
    last_seq: dict[str, int] = field(default_factory=dict)  # per epoch, in order of first sight


class SeqTracker:
    """Counts gaps, missing, duplicate messages and restarts per (sender, topic) stream.

    ``observe`` returns how many messages were missed just before this one
    (0 when in order), or -1 for a duplicate or out-of-order message, which a
    receiver should drop. The first message of a new epoch after another one
    is a restart: its ``seq`` earlier messages of that epoch count as missed.
    The first message ever seen is not a gap (the receiver joined late).

    A sender that predates epochs (``epoch == ""``) gives no restart signal but
    ``seq`` back to 0, so for it alone ``seq == 0`` still starts a new run.
    """

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], _Stream] = {}

    def observe(self, sender: str, topic: str, seq: int, epoch: str = LEGACY_EPOCH) -> int:
        stream = self._streams.setdefault((sender, topic), _Stream())
        last = stream.last_seq.get(epoch)
        if last is None:
            missed = self._first_of_epoch(stream, sender, topic, seq, epoch)
        elif epoch == LEGACY_EPOCH and seq == 0:
            stream.stats.restarts += 1
            missed = 0
        elif seq <= last:
            stream.stats.duplicates += 1
            return -1
        else:
            missed = seq - last - 1
        _accept(stream, seq, epoch, missed)
        return missed

    @staticmethod
    def _first_of_epoch(stream: _Stream, sender: str, topic: str, seq: int, epoch: str) -> int:
        if not stream.last_seq:
            return 0
        stream.stats.restarts += 1
        if len(stream.last_seq) >= MAX_EPOCHS:
            del stream.last_seq[next(iter(stream.last_seq))]
        log.info("%s/%s: sender restarted (epoch %s, first seq %d)",
                 sender, topic, epoch or "<none>", seq)  # fmt: skip
        return seq

    def stats(self, sender: str, topic: str) -> SeqStats:
        stream = self._streams.get((sender, topic))
        return stream.stats if stream is not None else SeqStats()

    def totals(self) -> SeqStats:
        total = SeqStats()
        for stream in self._streams.values():
            s = stream.stats
            total.received += s.received
            total.gaps += s.gaps
            total.missing += s.missing
            total.duplicates += s.duplicates
            total.restarts += s.restarts
        return total


def _accept(stream: _Stream, seq: int, epoch: str, missed: int) -> None:
    stats = stream.stats
    if missed:
        stats.gaps += 1
        stats.missing += missed
    stats.received += 1
    stats.last_seq = seq
    stats.epoch = epoch
    stream.last_seq[epoch] = seq
