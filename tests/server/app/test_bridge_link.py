"""BridgeLink against the fake bridge on loopback: reply matching, keep-latest actions."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from server.bridge_link import BridgeError, BridgeLink, finite_json, to_json
from server.fake_bridge import FakeBridge
from server.fanout import Hubs
from tandem.messages import Ping, StartDemo, TeleopAction
from tandem.settings import ServerSettings

pytestmark = pytest.mark.timeout(60)


def make_link(bridge: FakeBridge) -> BridgeLink:
    settings = ServerSettings(
        bridges=[bridge.pub_endpoint], bridge_cmd_endpoints=[bridge.cmd_endpoint],
        learner_metrics_endpoint="", command_timeout_s=2.0,
    )  # fmt: skip
    return BridgeLink(settings, Hubs())


def test_concurrent_commands_get_their_own_replies(bridge: FakeBridge) -> None:
    async def scenario() -> None:
        link = make_link(bridge)
        await link.start()
        try:
            replies = await asyncio.gather(*(link.command(Ping(reason=str(i))) for i in range(20)))
            seqs = [r.command_seq for r in replies]
            assert len(set(seqs)) == 20
            received = {r.command.seq: r.command.body.reason for r in bridge.received}
            assert all(received[r.command_seq] == str(i) for i, r in enumerate(replies))
            first = await link.command(StartDemo())
            second = await link.command(StartDemo())
            assert first.ok and not second.ok and "not allowed" in second.reason
        finally:
            await link.stop()

    asyncio.run(scenario())


def test_teleop_actions_are_keep_latest(bridge: FakeBridge) -> None:
    async def scenario() -> None:
        link = make_link(bridge)
        await link.start()
        try:
            await link.command(Ping())  # connected
            for i in range(5):  # no await in between: the sender cannot run
                link.send_action(TeleopAction(action=[i / 10] * 7, t_input=time.monotonic()))
            await asyncio.sleep(0.3)
        finally:
            await link.stop()

    asyncio.run(scenario())
    actions = bridge.wait_for("teleop_action", timeout=1.0)
    assert [a.command.body.action[0] for a in actions] == [0.4]  # type: ignore[union-attr]


def test_unknown_robot_and_missing_bridge() -> None:
    async def scenario() -> None:
        link = BridgeLink(
            ServerSettings(bridges=[], bridge_cmd_endpoints=[], learner_metrics_endpoint=""),
            Hubs(),
        )
        await link.start()
        try:
            with pytest.raises(BridgeError, match="no bridge is configured"):
                await link.command(Ping())
            with pytest.raises(BridgeError):
                link.send_action(TeleopAction(action=[0.0] * 7, t_input=0.0))
            assert await link.command_all(Ping) == []
        finally:
            await link.stop()

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="pair up"):
        BridgeLink(ServerSettings(bridges=["tcp://a:1"], bridge_cmd_endpoints=[]), Hubs())


def test_strict_json_has_no_nan() -> None:
    payload = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf"), "e": 2}}
    assert finite_json(payload) == {"a": None, "b": [1.0, None], "c": {"d": None, "e": 2}}
    assert json.loads(to_json(payload))["b"] == [1.0, None]


def test_command_to_an_absent_bridge_is_not_reachable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nobody = f"tcp://127.0.0.1:{port}"

    async def scenario() -> None:
        settings = ServerSettings(
            bridges=[nobody], bridge_cmd_endpoints=[nobody], learner_metrics_endpoint=""
        )
        link = BridgeLink(settings, Hubs())
        await link.start()
        try:
            t0 = time.monotonic()
            with pytest.raises(BridgeError, match="not reachable"):
                await link.command(Ping(), timeout_s=0.3)
            assert time.monotonic() - t0 < 2.0
        finally:
            await link.stop()

    asyncio.run(scenario())
