"""Fault injection on a real ``tandem up`` while the scripted operator records (issue 17).

Starts ``tandem up`` (server, sim:lift bridge, CPU learner) in a fresh data directory and
records demos with the scripted operator while it injects, in a shuffled order and at
random moments of an episode: ``--kills`` kill -9 of each of the server, the bridge and
the learner; ``--stops`` SIGSTOP/SIGCONT (0.5-3 s) of each; ``--garbage`` bursts of raw TCP
junk, junk frames and a never-reading subscriber on each ZMQ endpoint (bridge PUB, bridge
commands, learner weights, learner metrics). After each fault it waits for recovery; at
the end it checks every episode in the database and on disk against the operator's
reports (the machinery is ``tests/faults/chaos.py``, shared with the CI suite).

A fault is "survived" when the system recovered with the invariants intact (every killed
process restarted and only it, the learner resumed and publishes metrics, an episode
finished after the fault, no finished episode lost or damaged, an interrupted one lost at
most one flush interval of steps and is marked incomplete), else "lost".

    python bench/faults.py --kills 20

With ``--json`` stdout has one JSON object per fault kind, then one for the episodes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.faults.chaos import ALLOWANCE, Campaign, run_campaign, schedule


def records(campaign: Campaign) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [dict(row) for row in campaign.table()]
    counts = campaign.counts
    rows.append(
        {
            "fault": "episodes",
            "finished": counts.get("finished", 0),
            "interrupted": counts.get("interrupted", 0),
            "damaged": counts.get("damaged", 0),
            "max_lost_interrupted": counts.get("max steps lost when interrupted", 0),
            "allowance": ALLOWANCE,
            "learner_resumed": sum(bool(f.resumed) for f in campaign.faults),
            "problems": len(campaign.problems()),
            "seconds": round(campaign.seconds, 1),
        }
    )
    return rows


def print_table(campaign: Campaign) -> None:
    print("| fault kind | tried | survived | lost |")
    print("|---|---:|---:|---:|")
    for row in campaign.table():
        print(f"| {row['fault']} | {row['tried']} | {row['survived']} | {row['lost']} |")
    episodes = records(campaign)[-1]
    print(
        f"\nepisodes: {episodes['finished']} finished, {episodes['interrupted']} interrupted by "
        f"a fault, {episodes['damaged']} lost or damaged; most steps lost by an interrupted "
        f"episode: {episodes['max_lost_interrupted']} (allowance {ALLOWANCE}); "
        f"{episodes['seconds']:.0f} s; the learner resumed its run after "
        f"{episodes['learner_resumed']} kills (the others came before its first checkpoint)"
    )
    for problem in campaign.problems():
        print(f"PROBLEM {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kill -9 of each process kind")
    parser.add_argument("--stops", type=int, default=3, help="SIGSTOP/SIGCONT of each kind")
    parser.add_argument("--garbage", type=int, default=3, help="junk bursts on each endpoint")
    parser.add_argument("--seed", type=int, default=17, help="order and timing of the faults")
    parser.add_argument("--data", type=Path, help="data directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("tests.faults.chaos").setLevel(logging.INFO)  # progress, on stderr
    kinds = schedule(args.kills, args.stops, args.garbage, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        campaign = run_campaign(args.data or Path(tmp) / "data", kinds, args.seed)
    if args.json:
        for row in records(campaign):
            print(json.dumps(row), flush=True)
    else:
        print_table(campaign)
    return 1 if campaign.problems() else 0


if __name__ == "__main__":
    raise SystemExit(main())
