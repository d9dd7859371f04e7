"""Sequence tracking for streams that must not lose data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SeqStats:
    received: int = 0
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0
    last_seq: int | None = None


class SeqTracker:
    """Counts gaps, missing and duplicate messages per (sender, topic) stream.

    ``observe`` returns how many messages were missed just before this one
    (0 when in order), or -1 for a duplicate or out-of-order message, which a
    receiver should drop. A sender restart (seq back to 0) starts a new run.
    """

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], SeqStats] = {}

    def observe(self, sender: str, topic: str, seq: int) -> int:
        stats = self._streams.setdefault((sender, topic), SeqStats())
        last = stats.last_seq
        if last is not None and seq <= last and seq != 0:
            stats.duplicates += 1
            return -1
        missed = 0 if last is None or seq == 0 else seq - last - 1
        if missed:
            stats.gaps += 1
            stats.missing += missed
        stats.received += 1
        stats.last_seq = seq
        return missed

    def stats(self, sender: str, topic: str) -> SeqStats:
        return self._streams.get((sender, topic), SeqStats())

    def totals(self) -> SeqStats:
        total = SeqStats()
        for s in self._streams.values():
            total.received += s.received
            total.gaps += s.gaps
            total.missing += s.missing
            total.duplicates += s.duplicates
        return total
