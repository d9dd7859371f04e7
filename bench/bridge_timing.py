"""Control-loop timing of the bridge on sim:lift with both cameras.

Runs the real bridge loop (expert rollouts back to back: render, JPEG, publish)
for ``--seconds`` per scenario: idle and with the CPU cores loaded by busy-loop
processes, each without and (if the OS permits) with SCHED_FIFO. Prints tick
lateness p50/p99/max, work time, overruns, drift and the highest sustainable
rate (1 / work p99).

    python bench/bridge_timing.py --seconds 20

With ``--json`` stdout has one JSON object per scenario (the header goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
from typing import Any

import numpy as np
import zmq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from robot_bridge.app import build_policy
from robot_bridge.bridge import Bridge
from robot_bridge.factory import make_backend
from robot_bridge.pacer import enable_realtime
from tandem import wire
from tandem.messages import Command, CommandReply, ControlMode, Ping, ResetDone, StartRollout
from tandem.settings import BridgeSettings


def busy_loop() -> None:
    while True:
        pass


def realtime_permitted() -> bool:
    """Probe SCHED_FIFO in a throwaway thread (the probe's priority dies with it)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            result.append(True)
        except (OSError, AttributeError):
            result.append(False)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return result[0]


def keep_rolling(endpoint: str) -> None:
    """The operator, in its own process (no GIL shared with the loop): over the command
    socket, start a rollout and, whenever one ends, the next. Runs until terminated."""
    sock = zmq.Context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    body: Any = StartRollout()
    while True:
        time.sleep(0.05)
        wire.send(sock, Command(body=body))
        if sock.poll(1000):
            reply = wire.recv(sock).msg
            assert isinstance(reply, CommandReply)
            body = ResetDone() if reply.mode == ControlMode.AWAIT_RESET else Ping()


def scenario_child(
    seconds: float, rate: float, realtime: bool, cmd_endpoint: str, results: Any
) -> None:  # fmt: skip
    """One scenario in a fresh process, as ``tandem bridge`` would run it.

    SCHED_FIFO is taken first, before the backend is built, so that every thread the
    renderer starts (Mesa llvmpipe on a CPU-only machine) inherits it; a fresh process
    also means no renderer thread left over from an earlier scenario without it.
    """
    if realtime and not enable_realtime(10):
        raise RuntimeError("SCHED_FIFO refused")
    settings = BridgeSettings(
        robot="sim:lift", rate_hz=rate, pub_endpoint="tcp://127.0.0.1:*",
        cmd_endpoint=cmd_endpoint, policy="expert", seed=0,
    )  # fmt: skip
    backend = make_backend(settings.robot, settings)
    policy = build_policy("expert", backend, settings)
    bridge = Bridge(settings, backend, policy=policy, timing_window=10**6)
    bridge.start()
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    t0 = time.monotonic()
    bridge.run(stop)
    elapsed = time.monotonic() - t0
    bridge.close()
    results.put(summarize(bridge, elapsed, rate, realtime, 0))


def run_scenario(seconds: float, rate: float, realtime: bool, load: int) -> dict[str, Any]:
    spawn = mp.get_context("spawn")
    results = spawn.Queue()
    cmd_endpoint = f"tcp://127.0.0.1:{free_port()}"
    hogs = [spawn.Process(target=busy_loop, daemon=True) for _ in range(load)]
    child = spawn.Process(
        target=scenario_child, args=(seconds, rate, realtime, cmd_endpoint, results)
    )
    operator = spawn.Process(target=keep_rolling, args=(cmd_endpoint,), daemon=True)
    for proc in [*hogs, child, operator]:
        proc.start()
    result = results.get(timeout=seconds + 120)
    child.join()
    for proc in [*hogs, operator]:
        proc.terminate()
        proc.join()
    result["scenario"] = f"{f'loaded x{load}' if load else 'idle'}, {'RT' if realtime else 'no RT'}"
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summarize(
    bridge: Bridge, elapsed: float, rate: float, realtime: bool, load: int
) -> dict[str, Any]:
    late = np.asarray(bridge.timing.lateness_ms)
    work = np.asarray(bridge.timing.work_ms)
    ticks, overruns = bridge.timing.ticks, bridge.timing.overruns
    work_p99 = float(np.percentile(work, 99))
    return {
        "scenario": f"{f'loaded x{load}' if load else 'idle'}, {'RT' if realtime else 'no RT'}",
        "seconds": round(elapsed, 2),
        "ticks": ticks,
        "expected_ticks": int(elapsed * rate),
        "lateness_p50_ms": round(float(np.percentile(late, 50)), 3),
        "lateness_p99_ms": round(float(np.percentile(late, 99)), 3),
        "lateness_max_ms": round(float(late.max()), 3),
        "last_10_mean_lateness_ms": round(float(late[-10:].mean()), 3),
        "work_p50_ms": round(float(np.percentile(work, 50)), 3),
        "work_p99_ms": round(work_p99, 3),
        "work_max_ms": round(float(work.max()), 3),
        "overruns": overruns,
        "episodes": bridge._episodes,
        "max_rate_hz": round(1000.0 / work_p99, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each scenario")
    parser.add_argument("--rate", type=float, default=10.0, help="control rate in Hz")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    rt = realtime_permitted()
    header = f"# {os.cpu_count()} CPUs, SCHED_FIFO permitted: {rt}; machine shared with other jobs"
    print(header, file=sys.stderr if args.json else sys.stdout)
    results = []
    for load in (0, args.load):
        for realtime in (False, True) if rt else (False,):
            res = run_scenario(args.seconds, args.rate, realtime, load)
            results.append(res)
            print(json.dumps(res) if args.json else format_row(res), flush=True)


def format_row(r: dict[str, Any]) -> str:
    return (
        f"{r['scenario']:<18} ticks {r['ticks']:>4}/{r['expected_ticks']:<4} "
        f"lateness p50 {r['lateness_p50_ms']:6.3f} p99 {r['lateness_p99_ms']:7.3f} "
        f"max {r['lateness_max_ms']:7.3f} ms | work p50 {r['work_p50_ms']:6.2f} "
        f"p99 {r['work_p99_ms']:6.2f} max {r['work_max_ms']:6.2f} ms | overruns "
        f"{r['overruns']} | episodes {r['episodes']} | drift (last 10 mean lateness) "
        f"{r['last_10_mean_lateness_ms']:.3f} ms | max rate {r['max_rate_hz']} Hz"
    )


if __name__ == "__main__":
    main()
