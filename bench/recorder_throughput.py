"""Recorder throughput: can it keep up with N bridges at 10 Hz with two 96x96 cameras each?

Phase 1 publishes pre-encoded steps (JPEG frames, as a bridge sends them) from
every bridge as fast as ZMQ takes them and measures how many steps per second
the recorder sustains end to end (decode, write, flush, database). Phase 2
paces the bridges at the real rate and checks that the recorder never falls
behind. Prints the margin over the needed rate and the per-step handling
latency p50/p99.

    python bench/recorder_throughput.py [--bridges 2] [--cams 2] [--size 96] [--rate 10]

With ``--json`` each line is one JSON object, keyed by ``phase`` (max, paced, health).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from server.db.models import Robot
from server.recorder import Recorder
from server.store import EpisodeStore
from tandem.messages import ActionSource, BridgeStatus, ControlMode, EpisodeEvent, StepRecord
from tandem.wire import encode, send

STATE_DIM = 9


class Bridge:
    """A publisher with pre-encoded camera frames: only the JSON header changes per step."""

    def __init__(self, robot_id: str, cams: int, size: int) -> None:
        self.robot_id = robot_id
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        port: int = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.seq = {"step": 0, "episode": 0}
        rng = np.random.default_rng(0)
        frames = {
            f"cam/c{i}": rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for i in range(cams)
        }
        template = self._record("x", 0)
        parts = encode(template, frames, jpeg=list(frames))
        self.specs = StepRecord.model_validate_json(parts[1]).frames
        self.payloads = parts[2:]

    def _record(self, episode_id: str, step: int) -> StepRecord:
        return StepRecord(
            robot_id=self.robot_id, episode_id=episode_id, episode_kind="demo", step=step,
            mode=ControlMode.TELEOP, state=[0.1 * step] * STATE_DIM, action=[0.0] * 7,
            action_source=ActionSource.HUMAN, t_obs=time.monotonic(),
        )  # fmt: skip

    def _next(self, topic: str) -> int:
        self.seq[topic] += 1
        return self.seq[topic] - 1

    def step(self, episode_id: str, step: int) -> None:
        rec = self._record(episode_id, step).model_copy(
            update={"seq": self._next("step"), "frames": self.specs}
        )
        self.sock.send_multipart([b"step", rec.model_dump_json().encode(), *self.payloads])

    def event(self, episode_id: str, event: str, n: int = 0) -> None:
        msg = EpisodeEvent(
            seq=self._next("episode"), robot_id=self.robot_id, episode_id=episode_id,
            episode_kind="demo", event=event, num_steps=n,
            reason="started" if event == "start" else "time_limit", truncated=event == "end",
        )  # fmt: skip
        send(self.sock, msg)

    def episodes(self, prefix: str, count: int, steps: int, rate_hz: float | None) -> None:
        period = None if rate_hz is None else 1.0 / rate_hz
        next_t = time.monotonic()
        for e in range(count):
            eid = f"{prefix}{self.robot_id}-{e:04d}"
            self.event(eid, "start")
            for i in range(steps):
                self.step(eid, i)
                if period is not None:
                    next_t += period
                    time.sleep(max(0.0, next_t - time.monotonic()))
            self.event(eid, "end", steps)

    def wait_seen(self, store: EpisodeStore) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            send(self.sock, BridgeStatus(robot_id=self.robot_id, robot="bench", mode="idle"))
            with store.session() as s:
                if s.scalar(select(Robot.spec).where(Robot.id == self.robot_id)) == "bench":
                    return
            time.sleep(0.05)
        raise RuntimeError("the recorder never subscribed")


def run_phase(
    recorder: Recorder, bridges: list[Bridge], prefix: str, count: int, steps: int, *,
    rate_hz: float | None,
) -> tuple[float, int, int]:  # fmt: skip
    """Publish from every bridge in parallel; returns (seconds until all recorded, steps, lag)."""
    start_steps = recorder.stats().steps
    start_pub = sum(b.seq["step"] for b in bridges)
    total = len(bridges) * count * steps
    threads = [
        threading.Thread(target=b.episodes, args=(prefix, count, steps, rate_hz)) for b in bridges
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    max_lag = 0
    while any(t.is_alive() for t in threads):
        time.sleep(0.05)
        published = sum(b.seq["step"] for b in bridges) - start_pub
        max_lag = max(max_lag, published - (recorder.stats().steps - start_steps))
    while recorder.stats().steps - start_steps < total or recorder.open_episodes():
        time.sleep(0.005)
        if time.perf_counter() - t0 > 600:
            raise RuntimeError(f"recorder stuck: {recorder.stats()}")
    return time.perf_counter() - t0, total, max_lag


def emit(as_json: bool, record: dict[str, Any], text: str) -> None:
    print(json.dumps(record) if as_json else text, flush=True)


def max_phase(args: argparse.Namespace, recorder: Recorder, bridges: list[Bridge]) -> None:
    """Phase 1: every bridge publishes as fast as ZMQ takes the steps."""
    needed = args.bridges * args.rate
    secs, total, _ = run_phase(recorder, bridges, "max", args.episodes, args.steps, rate_hz=None)
    sustained = total / secs
    lat = recorder.step_latencies() * 1000
    p50, p99, top = np.percentile(lat, 50), np.percentile(lat, 99), lat.max()
    record = {
        "phase": "max", "steps_per_s": round(sustained, 1), "needed_steps_per_s": needed,
        "steps": total, "seconds": round(secs, 3), "bridges": args.bridges, "cams": args.cams,
        "size": args.size, "rate_hz": args.rate, "latency_p50_ms": round(float(p50), 3),
        "latency_p99_ms": round(float(p99), 3), "latency_max_ms": round(float(top), 3),
    }  # fmt: skip
    text = (
        f"max sustained: {sustained:.0f} steps/s ({total} steps in {secs:.2f} s), "
        f"margin {sustained / needed:.1f}x over {needed:.0f} steps/s\n"
        f"per-step handling latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {top:.2f} ms"
    )
    emit(args.json, record, text)


def paced_phase(args: argparse.Namespace, recorder: Recorder, bridges: list[Bridge]) -> None:
    """Phase 2: the bridges at their real rate; the recorder must never fall behind."""
    paced_steps = max(1, int(args.paced_seconds * args.rate))
    secs, total, lag = run_phase(recorder, bridges, "paced", 1, paced_steps, rate_hz=args.rate)
    record = {"phase": "paced", "steps": total, "seconds": round(secs, 3),
              "data_seconds": args.paced_seconds, "max_backlog_steps": max(lag, 0)}  # fmt: skip
    text = (
        f"paced at {args.rate:.0f} Hz: {total} steps recorded, {secs:.2f} s for "
        f"{args.paced_seconds:.1f} s of data, max backlog {max(lag, 0)} steps"
    )
    emit(args.json, record, text)
    stats = recorder.stats()
    counts = {"gaps": stats.gaps, "missing": stats.missing, "malformed": stats.malformed,
              "errors": stats.errors, "flushes": stats.flushes}  # fmt: skip
    text = ", ".join(f"{name} {n}" for name, n in counts.items())
    emit(args.json, {"phase": "health", **counts}, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bridges", type=int, default=2)
    parser.add_argument("--cams", type=int, default=2)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--rate", type=float, default=10.0, help="control rate of each bridge, Hz")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per bridge, phase 1")
    parser.add_argument("--steps", type=int, default=200, help="steps per episode")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = EpisodeStore(args.database_url, Path(tmp))
        bridges = [Bridge(f"robot{i}", args.cams, args.size) for i in range(args.bridges)]
        recorder = Recorder(store, [b.endpoint for b in bridges])
        recorder.start()
        for b in bridges:
            b.wait_seen(store)
        if not args.json:
            print(f"{args.bridges} bridges x {args.cams} cams {args.size}x{args.size} JPEG, "
                  f"{args.bridges * args.rate:.0f} steps/s needed")  # fmt: skip
        max_phase(args, recorder, bridges)
        paced_phase(args, recorder, bridges)
        recorder.stop()
        store.close()
        for b in bridges:
            b.sock.close()


if __name__ == "__main__":
    main()
