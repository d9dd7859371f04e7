"""Faults on a real ``tandem up`` while the scripted operator records (issue 17).

A short campaign on real processes on loopback: kill -9 of the server, the bridge and the
learner at random moments of an episode (``KILLS`` of each), one SIGSTOP/SIGCONT of each,
and garbage plus a flood on each ZMQ endpoint. Afterwards no finished episode is lost or
damaged, an interrupted one lost at most the steps of one flush interval and is marked
incomplete, every killed process came back (the learner resumed its run and publishes
metrics again) and nothing else restarted. ``bench/faults.py`` runs the same with more
faults and prints the table.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.faults.chaos import run_campaign, schedule

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]
log = logging.getLogger(__name__)

KILLS, STOPS, GARBAGE_ROUNDS, SEED = 2, 1, 1, 17


def test_kills_stops_and_garbage_lose_nothing(tmp_path: Path) -> None:
    campaign = run_campaign(tmp_path / "data", schedule(KILLS, STOPS, GARBAGE_ROUNDS, SEED), SEED)
    for row in campaign.table():
        log.info("%(fault)-16s tried %(tried)d survived %(survived)d lost %(lost)d", row)
    assert campaign.problems() == []
    assert len(campaign.faults) == 3 * KILLS + 3 * STOPS + 4 * GARBAGE_ROUNDS
    assert campaign.counts.get("finished", 0) > len(campaign.faults)  # one after each fault
