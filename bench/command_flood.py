"""The bridge loop under a flood of hostile commands at line rate (issue 17, defect 3).

Runs the real bridge loop (mock robot, ``--rate`` Hz) for ``--seconds`` quiet, then as
long with a flooding process sending hostile messages on the command socket as fast as
it can from several peers: garbage, oversized frames, headers over the command limit,
headers declaring thousands of frames, messages of 1000 frames, and valid teleop
actions the bridge must refuse. Another peer sends an e-stop (then a clear) every
``--estop-every`` seconds. Prints the tick rate, tick lateness p99 and the e-stop
latency in ticks (ticks begun between sending the e-stop and its reply).

    python bench/command_flood.py --seconds 10

With ``--json`` stdout has one JSON object per phase.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from typing import Any

import zmq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from robot_bridge.bridge import Bridge
from robot_bridge.factory import make_backend
from tandem import wire
from tandem.messages import ClearEStop, Command, CommandReply, EStop, TeleopAction
from tandem.settings import BridgeSettings


def hostile() -> list[list[bytes]]:
    """One message of each hostile kind (each goes out from its own peer)."""
    spec = {"name": "x", "encoding": "bytes", "nbytes": 0}
    frames = json.dumps({"v": 1, "frames": [spec] * 1000, "body": {"type": "ping"}}).encode()
    ping = json.dumps({"v": 1, "body": {"type": "ping"}}).encode()
    action = wire.encode(Command(body=TeleopAction(action=[0.5] * 7, t_input=0.0)))
    return [
        [b"cmd", b"\x00garbage{" * 8],
        [b"cmd", b"x" * (64 * 1024 + 1)],  # over ZMQ_MAXMSGSIZE: ZMQ drops it and the peer
        [b"cmd", b" " * 40_000 + ping],  # over the command header limit
        [b"cmd", frames],  # declares 1000 frames
        [b"cmd", ping, *[b""] * 1000],
        action,  # valid, refused: not in a human-driven mode
    ]


def flood(endpoint: str, stop: Any, sent: Any) -> None:
    """As fast as the sockets take it, until ``stop`` is set."""
    ctx = zmq.Context()
    kinds = hostile()
    socks = [ctx.socket(zmq.DEALER) for _ in kinds]
    for sock in socks:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
    while not stop.is_set():
        for sock, parts in zip(socks, kinds, strict=True):
            try:
                sock.send_multipart(parts, flags=zmq.NOBLOCK)
                sent.value += 1
            except zmq.Again:
                pass
            while sock.poll(0):
                sock.recv_multipart()
    ctx.destroy(linger=0)


def estop_ticks(bridge: Bridge, sock: zmq.Socket) -> tuple[int, float]:
    """Send an e-stop; ticks begun until its reply, and the seconds; then clear it."""
    before = bridge.timing.ticks
    t0 = time.monotonic()
    wire.send(sock, Command(body=EStop(reason="bench")))
    reply = wait_reply(sock, "estop")
    ticks, seconds = bridge.timing.ticks - before, time.monotonic() - t0
    assert reply.ok and reply.mode == "estop", reply
    wire.send(sock, Command(body=ClearEStop()))
    wait_reply(sock, "clear_estop")
    return ticks, seconds


def wait_reply(sock: zmq.Socket, kind: str) -> CommandReply:
    while sock.poll(10_000):
        reply = wire.recv(sock, expect=CommandReply).msg
        assert isinstance(reply, CommandReply)
        if reply.command_type == kind:
            return reply
    raise TimeoutError(f"no reply to {kind}")


def run_phase(seconds: float, rate: float, flooding: bool, estop_every: float) -> dict[str, Any]:
    s = BridgeSettings(robot="mock", rate_hz=rate, pub_endpoint="tcp://127.0.0.1:*",
                       cmd_endpoint="tcp://127.0.0.1:*")  # fmt: skip
    ctx = zmq.Context()
    bridge = Bridge(s, make_backend("mock", s), context=ctx, timing_window=100_000)
    bridge.start()
    assert bridge.cmds is not None
    stop, done, sent = mp.Event(), threading.Event(), mp.Value("q", 0, lock=False)
    flooder = mp.Process(target=flood, args=(bridge.cmds.endpoint, stop, sent), daemon=True)
    if flooding:
        flooder.start()
        time.sleep(0.5)
    loop = threading.Thread(target=bridge.run, args=(done,))
    loop.start()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(bridge.cmds.endpoint)
    t0, latencies = time.monotonic(), []
    while time.monotonic() - t0 < seconds:
        time.sleep(estop_every)
        latencies.append(estop_ticks(bridge, sock))
    elapsed = time.monotonic() - t0
    stop.set()
    done.set()
    loop.join()
    if flooding:
        flooder.join(5)
    timing, cmds = bridge.timing.snapshot(), bridge.cmds
    bridge.close()
    ctx.destroy(linger=0)
    return {
        "phase": "flood" if flooding else "quiet", "rate_hz": rate, "seconds": round(elapsed, 2),
        "tick_rate_hz": round(timing.ticks / elapsed, 2),
        "lateness_p99_ms": round(timing.lateness_p99_ms, 3), "overruns": timing.overruns,
        "estop_ticks_max": max(t for t, _ in latencies),
        "estop_ms_max": round(1000 * max(s for _, s in latencies), 1),
        "estops": len(latencies), "flood_sent": int(sent.value), "received": cmds.received,
        "malformed": cmds.malformed, "shed": getattr(cmds, "shed", 0),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    parser.add_argument("--rate", type=float, default=10.0, help="control rate in Hz")
    parser.add_argument("--estop-every", type=float, default=1.0, help="seconds between e-stops")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    for flooding in (False, True):
        r = run_phase(args.seconds, args.rate, flooding, args.estop_every)
        print(json.dumps(r) if args.json else format_row(r), flush=True)


def format_row(r: dict[str, Any]) -> str:
    return (
        f"{r['phase']:<6} ticks {r['tick_rate_hz']:5.2f}/s (rate {r['rate_hz']:g} Hz) | "
        f"lateness p99 {r['lateness_p99_ms']:6.3f} ms | overruns {r['overruns']} | e-stop "
        f"max {r['estop_ticks_max']} ticks ({r['estop_ms_max']} ms) over {r['estops']} | "
        f"flood sent {r['flood_sent']}, received {r['received']}, malformed "
        f"{r['malformed']}, shed {r['shed']}"
    )


if __name__ == "__main__":
    main()
