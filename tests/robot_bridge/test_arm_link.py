"""Real processes on loopback: the arm-server's watchdog, link loss and recovery of the bridge."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from robot_bridge.arm_server import Watchdog
from tandem.messages import ClearEStop, EndEpisode, Ping, StartDemo, TeleopAction
from tandem.messages.arm import GetState, Heartbeat
from tests.robot_bridge.conftest import (
    Collector,
    CommandClient,
    endpoint,
    free_port,
    spawn,
    stop_process,
    wait_hello,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def procs() -> Iterator[list]:
    started: list = []
    yield started
    for proc in started:
        stop_process(proc)


def test_watchdog_unit() -> None:
    dog = Watchdog(0.5)
    assert not dog.due(100.0), "not armed before the first request"
    dog.feed(100.0)
    assert not dog.due(100.5)
    assert dog.due(100.51) and dog.trips == 1
    assert not dog.due(101.0), "one stop per silence"
    assert dog.last_trip_after_s == pytest.approx(0.51)
    dog.feed(102.0)
    assert dog.wait_s(102.2) == pytest.approx(0.05)
    assert dog.wait_s(102.49) == pytest.approx(0.0101, abs=1e-3)


def test_arm_server_stops_the_arm_when_commands_stop(procs, ctx) -> None:
    ep = endpoint()
    procs.append(spawn(["arm-server", "--driver", "mock", "--bind", ep, "--timeout", "0.3"]))
    arm = wait_hello(ep, ctx)
    assert arm.spec.arm_timeout_s == pytest.approx(0.3)
    # heartbeats keep it alive
    for _ in range(8):
        arm.client.request(Heartbeat())
        time.sleep(0.1)
    state = arm.step(np.array([0.01, 0, 0]), np.zeros(3), -1.0)
    assert not state.stopped
    reply, _ = arm.client.request(GetState(images=False))
    assert reply.state is not None and reply.state.watchdog_trips == 0
    time.sleep(0.6)  # silence
    reply, _ = arm.client.request(GetState(images=False))
    assert reply.state is not None
    assert reply.state.stopped and reply.state.watchdog_trips == 1
    # stopped within its configured time (plus the server's poll granularity)
    assert 0.3 < reply.state.last_stop_after_s <= 0.3 + 0.03
    # a malformed request is answered with an error and does not stop the server
    arm.client._socket().send_multipart([b"arm_req", b"{bad json"])
    assert arm.client._socket().poll(2000)
    assert b"not valid JSON" in arm.client._socket().recv_multipart()[1]
    arm.client.reset()
    arm.heartbeat()


def test_only_the_peer_driving_the_arm_keeps_it_alive(procs, ctx) -> None:
    ep = endpoint()
    procs.append(spawn(["arm-server", "--driver", "mock", "--bind", ep, "--timeout", "0.3"]))
    monitor = wait_hello(ep, ctx)
    monitor.client.reset()  # from now on a connection that never drives, like a dashboard
    driver = wait_hello(ep, ctx)  # hello: this peer holds the link
    driver.step(np.array([0.01, 0, 0]), np.zeros(3), -1.0)
    deadline = time.monotonic() + 0.9
    while time.monotonic() < deadline:  # the driver fell silent; the monitor polls
        reply, _ = monitor.client.request(GetState(images=False))
        time.sleep(0.05)
    assert reply.state is not None and reply.state.stopped, "a reader kept the arm alive"
    assert reply.state.watchdog_trips == 1
    state = driver.step(np.array([0.01, 0, 0]), np.zeros(3), -1.0)  # the driver resumes
    assert not state.stopped


def bridge_status(sub: Collector):
    return sub.last_status()


def test_link_loss_goes_to_estop_and_recovers(procs, ctx) -> None:
    port = free_port()
    arm_ep = f"tcp://127.0.0.1:{port}"
    pub, cmd = endpoint(), endpoint()
    procs.append(spawn(["arm-server", "--driver", "mock", "--bind", arm_ep]))
    wait_hello(arm_ep, ctx).client.close()
    bridge = spawn(
        ["bridge", "--robot", f"zmq://127.0.0.1:{port}", "--pub", pub, "--cmd", cmd],
        TANDEM_BRIDGE__STATUS_PERIOD_S="0.1",
    )
    procs.append(bridge)
    sub, client = Collector(pub, ctx), CommandClient(cmd, ctx)
    try:
        assert client.send(Ping(), timeout=20).ok
        sub.wait_for(sub.last_status)
        reply = client.send(StartDemo())
        assert reply.ok and reply.mode == "teleop", reply.reason
        for _ in range(5):
            client.send(TeleopAction(action=[0.2, 0, 0, 0, 0, 0, -1], t_input=time.monotonic()))
            time.sleep(0.05)
        sub.wait_for(lambda: len(sub.get("step")) >= 3)

        stop_process(procs[0])  # kill the arm-server mid-episode
        t_kill = time.monotonic()
        status = sub.wait_for(lambda: (s := bridge_status(sub)) and s.mode == "estop" and s, 3)
        assert time.monotonic() - t_kill < 1.0, "link loss must be reported within one second"
        assert not status.link_ok and "lost" in status.estop_reason
        assert any(e.kind == "link_lost" for e in status.safety_events)
        end = sub.wait_for(lambda: sub.events("end"))[0]
        assert end.reason == "safety_stop" and end.truncated

        reply = client.send(ClearEStop())
        assert not reply.ok and "link" in reply.reason and reply.mode == "estop"

        procs[0] = spawn(["arm-server", "--driver", "mock", "--bind", arm_ep])
        sub.wait_for(lambda: (s := bridge_status(sub)) and s.link_ok, 20)
        reply = client.send(ClearEStop(operator="ann"))
        assert reply.ok and reply.mode == "idle", reply.reason
        n = len(sub.get("step"))
        assert client.send(StartDemo()).ok
        sub.wait_for(lambda: len(sub.get("step")) >= n + 3)
        assert client.send(EndEpisode(label="discard")).ok
        assert bridge.poll() is None, "the bridge kept running throughout"
    finally:
        sub.close()
        client.close()
    out = stop_process(bridge)
    assert "link" in out and "lost" in out
