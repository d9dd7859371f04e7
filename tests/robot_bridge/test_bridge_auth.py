"""Only peers with the deployment's keys reach the bridge and the arm-server (issue 17,
defect 1): a peer with no keys, another deployment's keys or a key not on the
allow-list can neither command nor subscribe. Real sockets on loopback."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from robot_bridge.arm_client import ArmClient, LinkError, RemoteDriver
from robot_bridge.arm_server import ArmServer
from robot_bridge.mock import MockDriver
from tandem import security, wire
from tandem.messages import ClearEStop, EStop, StartDemo
from tandem.messages.arm import ApplyAction, ArmRequest
from tests.robot_bridge.conftest import Collector, CommandClient
from tests.security_keys import BAD_PEERS, bad_peers, deployment

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def keys(tmp_path: Path) -> security.Keys:
    return deployment(tmp_path / "keys")


@pytest.fixture
def peers(keys: security.Keys, tmp_path: Path) -> dict[str, security.Policy]:
    return bad_peers(keys, tmp_path)


@pytest.fixture
def keyed(keys: security.Keys) -> Iterator[security.Policy]:
    """This process binds with the deployment's keys (as under ``tandem up``)."""
    with security.using(security.Policy(keys)) as policy:
        yield policy


@pytest.mark.parametrize("peer", BAD_PEERS)
def test_a_peer_without_the_keys_cannot_clear_an_estop_or_start_a_demo(
    peer, keyed, peers, run_bridge, ctx
) -> None:
    run = run_bridge()
    assert run.cmd.send(EStop()).mode == "estop"  # the keyed operator latches an e-stop
    intruder = CommandClient(run.bridge.s.cmd_endpoint, ctx, peers[peer])
    intruder.sock.setsockopt(zmq.SNDTIMEO, 500)  # with no connection a DEALER send blocks
    try:
        for body in (ClearEStop(), StartDemo(operator="intruder")):
            with pytest.raises((AssertionError, zmq.Again)):  # no reply, or not even sent
                intruder.send(body, timeout=0.5)
    finally:
        intruder.close()
    assert run.cmd.send(EStop()).mode == "estop"  # still latched: nothing got through
    assert run.bridge.cmds.received == 2  # the two e-stops; the intruder's never arrived


@pytest.mark.parametrize("peer", BAD_PEERS)
def test_a_peer_without_the_keys_receives_no_step_status_or_frame(
    peer, keyed, peers, run_bridge, ctx
) -> None:
    run = run_bridge()
    spy = Collector(run.bridge.s.pub_endpoint, ctx, peers[peer])
    try:
        assert run.cmd.send(StartDemo(operator="op")).ok
        run.sub.wait_for(lambda: run.sub.get("step") and run.sub.get("frame"), timeout=10)
        time.sleep(0.3)
        assert run.sub.get("status")  # the keyed subscriber got everything...
        assert spy.by_topic == {}  # ...the spy nothing at all
    finally:
        spy.close()


@pytest.fixture
def arm(keyed, ctx) -> Iterator[ArmServer]:
    server = ArmServer(MockDriver(arm_timeout_s=5.0), "tcp://127.0.0.1:*", context=ctx)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(5)


def _move(dx: float) -> list[bytes]:
    body = ApplyAction(delta_pos_m=[dx, 0, 0], delta_rot_rad=[0, 0, 0], gripper=0)
    return wire.encode(ArmRequest(seq=1, body=body))


@pytest.mark.parametrize("peer", BAD_PEERS)
def test_a_peer_without_the_keys_cannot_move_the_arm(peer, arm, peers, ctx) -> None:
    bad = peers[peer]
    before = np.array(arm.driver.read_state().ee_pos)
    intruder = ctx.socket(zmq.DEALER)
    intruder.setsockopt(zmq.LINGER, 0)
    security.connect(intruder, arm.endpoint, bad)
    for _ in range(5):
        with contextlib.suppress(zmq.Again):  # with no connection there is nowhere to queue
            intruder.send_multipart(_move(0.05), flags=zmq.NOBLOCK)
    assert not intruder.poll(1000)  # no reply
    intruder.close()
    assert arm.requests == 0
    assert np.array(arm.driver.read_state().ee_pos) == pytest.approx(before)
    with security.using(bad), pytest.raises(LinkError):  # the real client, with those keys
        RemoteDriver(ArmClient(arm.endpoint, 0.3, context=ctx)).hello()


def test_the_keyed_bridge_client_drives_the_arm(arm, ctx) -> None:
    remote = RemoteDriver(ArmClient(arm.endpoint, 1.0, context=ctx))
    remote.connect()
    before = remote.read_state(images=False).ee_pos
    after = remote.step(np.array([0.01, 0, 0]), np.zeros(3), 0.0)
    assert after.ee_pos == pytest.approx(before + np.array([0.01, 0, 0]))
    remote.close()
