"""Malformed, out-of-range and non-finite commands are refused; the loop keeps its rate."""

from __future__ import annotations

import json
import time

import pytest

from tandem import wire
from tandem.messages import Command, Ping, StartDemo, TeleopAction
from tests.robot_bridge.conftest import bridge_settings

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


def test_a_flood_of_bad_commands_does_not_slow_the_loop(run_bridge) -> None:
    run = run_bridge(bridge_settings(rate_hz=20.0, status_period_s=0.1))
    assert run.cmd.send(StartDemo()).ok
    time.sleep(0.3)
    first = run.sub.last_status()
    t0 = time.monotonic()
    sent = 0
    while time.monotonic() - t0 < 2.0:
        for parts, _ in BAD:
            run.cmd.sock.send_multipart(parts)
            sent += 1
        good = wire.encode(Command(body=TeleopAction(action=[5.0] * 7, t_input=0.0)))
        run.cmd.sock.send_multipart(good)
        sent += 1
        time.sleep(0.002)
    replies = 0
    while run.cmd.sock.poll(1000):
        reply = wire.recv(run.cmd.sock).msg
        assert not reply.ok and reply.reason  # type: ignore[attr-defined]
        replies += 1
        if replies == sent:
            break
    assert replies == sent, "every bad command gets its refusal"
    last = run.sub.last_status()
    elapsed = last.t_mono - first.t_mono
    ticks = last.timing.ticks - first.timing.ticks
    # the loop kept its 20 Hz through thousands of bad commands
    assert ticks == pytest.approx(elapsed * 20.0, abs=3)
    assert last.mode == "teleop" and last.timing.overruns - first.timing.overruns <= 1
    steps = [d.msg.seq for d in run.sub.get("step")]
    assert steps == list(range(steps[0], steps[0] + len(steps)))
    assert all(d.msg.action_source == "hold" for d in run.sub.get("step"))
