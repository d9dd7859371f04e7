"""Arm-server and client over loopback in one process: limits, errors, timeouts, REQ clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from robot_bridge.arm_client import ArmClient, LinkError, RemoteDriver
from robot_bridge.arm_server import ArmServer
from robot_bridge.driver import DriverError
from robot_bridge.mock import MockDriver
from tandem import wire
from tandem.messages.arm import ApplyAction, ArmReply, ArmRequest, Heartbeat, Home, Stop
from tests.robot_bridge.conftest import endpoint

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def served(ctx: zmq.Context) -> Iterator[tuple[ArmServer, RemoteDriver]]:
    driver = MockDriver(arm_timeout_s=5.0)
    server = ArmServer(driver, "tcp://127.0.0.1:*", context=ctx)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    remote = RemoteDriver(ArmClient(server.endpoint, 1.0, context=ctx))
    remote.connect()
    yield server, remote
    remote.close()
    stop.set()
    thread.join(5)


def test_remote_driver_round_trip(served) -> None:
    server, remote = served
    assert remote.spec.driver == "mock" and remote.spec.state_dim == 17
    remote.home(randomize=True, seed=2)
    before = remote.read_state()
    assert set(before.images) == {"front", "wrist"} and before.images["front"].shape == (96, 96, 3)
    after = remote.step(np.array([0.01, -0.02, 0.03]), np.zeros(3), 1.0)
    assert after.ee_pos == pytest.approx(before.ee_pos + np.array([0.01, -0.02, 0.03]))
    assert after.gripper == 0.0 and after.images == {}
    remote.stop()
    assert remote.read_state(images=False).stopped and server.driver.stop_calls >= 1  # type: ignore[attr-defined]
    remote.heartbeat()


def test_server_refuses_steps_beyond_its_limits(served) -> None:
    _, remote = served
    with pytest.raises(DriverError, match=r"exceeds 0\.05 m per step"):
        remote.step(np.array([0.2, 0.0, 0.0]), np.zeros(3), 0.0)
    with pytest.raises(DriverError, match=r"exceeds 0\.2 rad"):
        remote.step(np.zeros(3), np.array([0.0, 0.5, 0.0]), 0.0)
    remote.step(np.array([0.05, 0.0, 0.0]), np.zeros(3), 0.0)  # at the limit is fine


def test_req_clients_work_too(served, ctx) -> None:
    server, _ = served
    req = ctx.socket(zmq.REQ)
    req.connect(server.endpoint)
    for i, body in enumerate([Heartbeat(), Home(), Stop()]):
        wire.send(req, ArmRequest(seq=i, body=body))
        assert req.poll(2000)
        reply = wire.recv(req, expect=ArmReply).msg
        assert isinstance(reply, ArmReply) and reply.ok and reply.req_seq == i
    wire.send(
        req,
        ArmRequest(
            seq=9, body=ApplyAction(delta_pos_m=[0, 0, 0], delta_rot_rad=[0, 0, 0], gripper=0)
        ),
    )
    assert req.poll(2000) and wire.recv(req).msg.ok  # type: ignore[attr-defined]
    req.close(linger=0)


def test_timeout_on_a_silent_peer_raises_link_error(ctx) -> None:
    ep = endpoint()
    silent = ctx.socket(zmq.ROUTER)  # receives, never answers
    silent.bind(ep)
    client = ArmClient(ep, 0.1, context=ctx)
    t0 = time.monotonic()
    with pytest.raises(LinkError, match="no reply to heartbeat"):
        client.request(Heartbeat())
    assert 0.09 < time.monotonic() - t0 < 0.5
    nobody = ArmClient(endpoint(), 0.1, context=ctx)  # nothing bound there at all
    with pytest.raises(LinkError, match="not reachable"):
        nobody.request(Heartbeat())
    silent.close(linger=0)
    client.close()
    nobody.close()
