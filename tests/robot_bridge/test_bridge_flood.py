"""A flood of hostile commands neither stalls the loop nor delays an e-stop (issue 17,
defect 3): headers of megabytes, messages of thousands of frames and garbage, sent as
fast as a peer can, while another peer sends an e-stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tandem.messages import EStop, StartDemo
from tests.robot_bridge.conftest import REPO, bridge_settings, record_ticks

pytestmark = pytest.mark.timeout(60)
RATE_HZ = 20.0

# Three peers: 30 headers of 2.8 MB (under the codec's 4 MB limit, 60k frame specs each),
# messages of 1000 frames, and garbage, each as fast as the socket takes them.
FLOOD = """
import json, sys, time, zmq
ctx = zmq.Context()
socks = []
for _ in range(3):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.SNDHWM, 100)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(sys.argv[1])
    socks.append(s)
spec = {"name": "x", "encoding": "bytes", "nbytes": 0}
big = json.dumps({"v": 1, "frames": [spec] * 60000, "body": {"type": "ping"}}).encode()
small = json.dumps({"v": 1, "body": {"type": "ping"}}).encode()
kinds = [[b"cmd", big], [b"cmd", small, *[b""] * 1000], [b"cmd", b"\\x00garbage{" * 8]]
sent = [0, 0, 0]
print("go", flush=True)
t0 = time.monotonic()
while time.monotonic() - t0 < float(sys.argv[2]):
    for i, (sock, parts) in enumerate(zip(socks, kinds)):
        if i == 0 and sent[0] >= 30:
            continue
        try:
            sock.send_multipart(parts, flags=zmq.NOBLOCK)
            sent[i] += 1
        except zmq.Again:
            pass
print(*sent, t0, time.monotonic(), flush=True)
"""


def test_a_flood_neither_stalls_the_loop_nor_delays_the_estop(run_bridge) -> None:
    run = run_bridge(bridge_settings(rate_hz=RATE_HZ))
    ticks = record_ticks(run)
    assert run.cmd.send(StartDemo()).ok
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOD, run.bridge.s.cmd_endpoint, "3.0"], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
        time.sleep(1.0)  # the flood is on
        t_send = time.monotonic()
        reply = run.cmd.send(EStop(reason="amid a flood"), timeout=5.0)
        t_reply = time.monotonic()
        out = proc.communicate(timeout=30)[0].split()
    finally:
        proc.kill()
    assert reply.ok and reply.mode == "estop", reply
    late = [t for t in ticks if t_send < t <= t_reply]
    assert len(late) <= 2, f"e-stop took {len(late)} ticks ({t_reply - t_send:.3f} s)"
    big, many, garbage = map(int, out[:3])
    t0, t1 = map(float, out[3:])
    assert big == 30 and many > 50 and garbage > 1000, out
    during = [t for t in ticks if t0 <= t <= t1]
    assert len(during) >= 0.8 * (t1 - t0) * RATE_HZ, (len(during), t1 - t0)
    assert run.bridge.cmds is not None and run.bridge.cmds.malformed > 100  # it did arrive
