"""SeqTracker: order, gaps and duplicates per sender epoch; a restart is a new epoch."""

from __future__ import annotations

import json

from tandem.messages import EpisodeEvent, EpisodeKind, Sequencer
from tandem.streams import MAX_EPOCHS, SeqTracker
from tandem.wire import decode, encode

OLD, NEW = "a" * 32, "b" * 32


def _run(tracker: SeqTracker, seqs: range | list[int], epoch: str) -> list[int]:
    return [tracker.observe("robot0", "step", s, epoch) for s in seqs]


def test_new_epoch_with_missed_first_messages_is_a_restart_not_duplicates() -> None:
    tracker = SeqTracker()
    _run(tracker, range(101), OLD)
    # The restarted sender's seq 0..4 were missed (slow reconnect): seq 5 opens the new epoch.
    assert _run(tracker, range(5, 40), NEW) == [5] + [0] * 34
    stats = tracker.stats("robot0", "step")
    assert stats.duplicates == 0 and stats.restarts == 1
    assert stats.received == 101 + 35 and stats.epoch == NEW and stats.last_seq == 39
    assert (stats.gaps, stats.missing) == (1, 5)  # seq 0..4 of the new epoch


def test_duplicates_within_an_epoch_are_still_dropped() -> None:
    tracker = SeqTracker()
    assert _run(tracker, [0, 1, 2, 2, 1, 0, 3], NEW) == [0, 0, 0, -1, -1, -1, 0]
    stats = tracker.stats("robot0", "step")
    assert stats.duplicates == 3 and stats.restarts == 0 and stats.received == 4


def test_gaps_are_counted_per_epoch() -> None:
    tracker = SeqTracker()
    assert _run(tracker, [0, 1, 4, 5], OLD) == [0, 0, 2, 0]
    assert _run(tracker, [0, 3, 4], NEW) == [0, 2, 0]
    # A late message of the old epoch (a backlog of the killed process) is judged
    # against the old epoch's last seq, not the new one's, and vice versa.
    assert _run(tracker, [6, 5], OLD) == [0, -1]
    assert _run(tracker, [5], NEW) == [0]
    stats = tracker.stats("robot0", "step")
    assert (stats.gaps, stats.missing, stats.duplicates, stats.restarts) == (2, 4, 1, 1)


def test_first_message_ever_is_not_a_gap_and_streams_are_separate() -> None:
    tracker = SeqTracker()
    assert tracker.observe("robot0", "step", 50, OLD) == 0  # the receiver joined late
    assert tracker.observe("robot1", "step", 7, NEW) == 0
    assert tracker.observe("robot0", "episode", 3, NEW) == 0
    totals = tracker.totals()
    assert (totals.received, totals.gaps, totals.restarts) == (3, 0, 0)


def test_sender_without_epoch_still_restarts_at_seq_zero() -> None:
    """Compatibility: a sender that predates epochs only signals a restart by seq 0."""
    tracker = SeqTracker()
    assert _run(tracker, [0, 1, 2, 0, 1, 1], "") == [0, 0, 0, 0, 0, -1]
    stats = tracker.stats("robot0", "step")
    assert stats.restarts == 1 and stats.duplicates == 1


def test_old_epochs_are_forgotten_beyond_the_bound() -> None:
    tracker = SeqTracker()
    for k in range(MAX_EPOCHS + 5):
        tracker.observe("robot0", "step", 0, f"{k:032x}")
    assert len(tracker._streams[("robot0", "step")].last_seq) == MAX_EPOCHS
    assert tracker.stats("robot0", "step").restarts == MAX_EPOCHS + 4


def test_sequencer_stamps_one_random_epoch_per_sender() -> None:
    a, b = Sequencer(), Sequencer()
    assert a.epoch != b.epoch and len(a.epoch) == 32
    msgs = [EpisodeEvent(robot_id="r", episode_id="e", episode_kind=EpisodeKind.DEMO,
                         event="start") for _ in range(3)]  # fmt: skip
    assert [a.stamp(m).seq for m in msgs] == [0, 1, 2]
    assert {m.epoch for m in msgs} == {a.epoch}
    assert decode(encode(msgs[2])).msg.epoch == a.epoch


def test_message_without_epoch_from_an_older_sender_still_validates() -> None:
    msg = EpisodeEvent(robot_id="r", episode_id="e", episode_kind=EpisodeKind.DEMO, event="start")
    topic, header = encode(msg)
    fields = json.loads(header)
    del fields["epoch"]
    assert decode([topic, json.dumps(fields).encode()]).msg.epoch == ""
