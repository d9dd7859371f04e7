"""Malformed, out-of-range and non-finite commands are refused; the loop keeps its rate."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tandem import wire
from tandem.messages import Command, Ping, StartDemo, TeleopAction
from tests.robot_bridge.conftest import REPO, bridge_settings, record_ticks

pytestmark = pytest.mark.timeout(60)


def teleop_header(action: list) -> bytes:
    cmd = Command(body=TeleopAction(action=[0.0] * 7, t_input=0.0))
    data = json.loads(cmd.model_dump_json())
    data["body"]["action"] = action
    return json.dumps(data).encode()  # json.dumps writes NaN / Infinity literals


BAD = [
    ([b"cmd", b"{not json"], "not valid JSON"),
    ([b"bogus", b"{}"], "unknown topic"),
    ([b"cmd"], "truncated"),
    ([b"cmd", b"[1, 2]"], "JSON object"),
    ([b"cmd", json.dumps({"v": 99, "body": {"type": "ping"}}).encode()], "schema version"),
    ([b"cmd", json.dumps({"v": 1, "body": {"type": "fly"}}).encode()], "body"),
    ([b"cmd", teleop_header([float("nan")] + [0.0] * 6)], "non-finite"),
    ([b"cmd", teleop_header([float("inf")] + [0.0] * 6)], "non-finite"),
    ([b"cmd", teleop_header([0.0] * 6)], "7 numbers"),
    ([b"cmd", teleop_header(["a"] + [0.0] * 6)], "action"),
    ([*wire.encode(Command(body=Ping())), b"extra frame"], "frames"),
    ([b"\xff\xfe", b"{}"], "ASCII"),
]


def test_malformed_commands_are_refused_with_a_reason(run_bridge) -> None:
    run = run_bridge()
    assert run.cmd.send(StartDemo()).ok
    for parts, needle in BAD:
        reply = run.cmd.send_raw(parts)
        assert not reply.ok and reply.command_type == "invalid"
        assert needle in reply.reason, (needle, reply.reason)
        assert reply.mode == "teleop"
    reply = run.cmd.send(TeleopAction(action=[0, 0, 1.5, 0, 0, -3, 0], t_input=0.0))
    assert not reply.ok and "[2, 5]" in reply.reason and "outside [-1, 1]" in reply.reason
    assert run.cmd.send(Ping()).ok


FLOOD = """
import sys, time, zmq
from tandem import wire
from tandem.messages import Command, TeleopAction
from tests.robot_bridge.test_bridge_bad_commands import BAD
sock = zmq.Context().socket(zmq.DEALER)
sock.connect(sys.argv[1])
good = wire.encode(Command(body=TeleopAction(action=[5.0] * 7, t_input=0.0)))
sent = replies = refused = 0
t0 = time.monotonic()  # CLOCK_MONOTONIC is system-wide: the test compares it with the bridge's
while time.monotonic() - t0 < float(sys.argv[2]):
    for parts, _ in BAD:
        sock.send_multipart(parts)
    sock.send_multipart(good)
    sent += len(BAD) + 1
    time.sleep(0.01)
    while sock.poll(0):
        reply = wire.recv(sock).msg
        replies += 1
        refused += (not reply.ok) and bool(reply.reason)
t1 = time.monotonic()
while replies < sent and sock.poll(2000):
    reply = wire.recv(sock).msg
    replies += 1
    refused += (not reply.ok) and bool(reply.reason)
print(sent, replies, refused, t0, t1)
"""


def test_a_flood_of_bad_commands_does_not_slow_the_loop(run_bridge) -> None:
    run = run_bridge(bridge_settings(rate_hz=20.0, status_period_s=0.1))
    ticks = record_ticks(run)
    assert run.cmd.send(StartDemo()).ok
    # the flood comes from another process, as it would in deployment
    proc = subprocess.run(
        [sys.executable, "-c", FLOOD, run.bridge.s.cmd_endpoint, "3.0"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    out = proc.stdout.split()
    sent, replies, refused = map(int, out[:3])
    t0, t1 = map(float, out[3:])
    assert sent > 2000 and replies == sent and refused == sent, "every bad command is refused"
    # the loop kept its 20 Hz while thousands of bad commands arrived (allowance: the
    # machine is shared, so a tick or two may be lost to other jobs, not to the flood)
    during = [t for t in ticks if t0 <= t <= t1]
    # a stalled loop ticks at well under half its rate (4 Hz of 10 before issue 17); a
    # loaded CI machine costs a few ticks (52 of 60 seen)
    assert len(during) >= 0.75 * (t1 - t0) * 20.0, (len(during), t1 - t0)
    assert run.bridge.machine.mode == "teleop"
    steps = [d.msg.seq for d in run.sub.get("step")]
    assert steps == list(range(steps[0], steps[0] + len(steps)))
    assert all(d.msg.action_source == "hold" for d in run.sub.get("step"))
