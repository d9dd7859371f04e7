"""/ws/control with the real app and a fake bridge on loopback ZMQ."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from app_helpers import wait_until
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from server.fake_bridge import FakeBridge
from tandem.messages import ControlMode, EndEpisode, Outcome, TeleopAction

pytestmark = pytest.mark.timeout(60)

DEADMAN = 5  # settings.teleop.deadman_button default (RB)


def now_ms() -> float:
    return time.time() * 1000.0


def connect(client: TestClient, token: str | None, **query: str) -> Any:
    params = "&".join(
        f"{k}={v}" for k, v in {**query, **({"token": token} if token else {})}.items()
    )
    return client.websocket_connect(f"/ws/control?{params}")


def recv_type(ws: WebSocketTestSession, kind: str, limit: int = 50) -> dict[str, Any]:
    """Read messages until one of type ``kind`` arrives (others are skipped)."""
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind!r} message among {limit}")


def send(ws: WebSocketTestSession, seq: int, msg_type: str, **fields: Any) -> None:
    ws.send_text(json.dumps({"v": 1, "seq": seq, "type": msg_type, **fields}))


def gamepad(deadman: bool, x: float = 0.5) -> dict[str, Any]:
    buttons = [
        {"pressed": i == DEADMAN and deadman, "value": 1.0 if i == DEADMAN and deadman else 0.0}
        for i in range(17)
    ]
    return {"axes": [x, 0.0, 0.0, 0.0], "buttons": buttons, "t_input": now_ms()}


def claim(ws: WebSocketTestSession, seq: int = 1) -> dict[str, Any]:
    send(ws, seq, "claim")
    return recv_type(ws, "lease")


def test_no_token_closes_with_4401(client: TestClient) -> None:
    with connect(client, None) as ws, pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()
    assert info.value.code == 4401


def test_bad_token_closes_with_4401(client: TestClient) -> None:
    with connect(client, "nonsense") as ws, pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()
    assert info.value.code == 4401


def test_initial_lease_message_and_claim(client: TestClient, tokens: dict[str, str]) -> None:
    with connect(client, tokens["op"]) as ws:
        first = ws.receive_json()
        assert first == {**first, "type": "lease", "holder": None, "you_hold": False}
        lease = claim(ws)
        assert lease["you_hold"] is True and lease["holder"] == "op"
        assert 0 < lease["expires_in_s"] <= 5.0


def test_second_operator_denied_until_disconnect(
    client: TestClient, tokens: dict[str, str]
) -> None:
    with connect(client, tokens["op"]) as first:
        first.receive_json()
        assert claim(first)["you_hold"]
        with connect(client, tokens["op2"]) as second:
            assert second.receive_json()["holder"] == "op"
            send(second, 1, "claim")
            error = recv_type(second, "error")
            assert "held by op" in error["message"] and error["ref_seq"] == 1
            lease = recv_type(second, "lease")
            assert lease["you_hold"] is False and lease["holder"] == "op"
        # the first one still holds it
        send(first, 2, "ping", t_client=now_ms())
        recv_type(first, "pong")
    # first disconnected: the lease is free again, and its operating session is closed
    closed = wait_until(
        lambda: [(op, end is not None) for op, end in _sessions(client)] == [("op", True)],
        what="the operating session to close",
    )
    assert closed
    with connect(client, tokens["op2"]) as second:
        wait_until(lambda: not client.app.state.tandem.leases.snapshot(), what="lease release")  # type: ignore[attr-defined]
        second.receive_json()
        assert claim(second)["you_hold"]


def test_release_tells_other_clients(client: TestClient, tokens: dict[str, str]) -> None:
    with connect(client, tokens["op"]) as first, connect(client, tokens["op2"]) as second:
        first.receive_json()
        second.receive_json()
        claim(first)
        assert recv_type(second, "lease")["holder"] == "op"
        send(first, 2, "release")
        assert recv_type(first, "lease")["holder"] is None
        assert recv_type(second, "lease")["holder"] is None
        assert claim(second)["you_hold"]


def test_viewer_cannot_claim(client: TestClient, tokens: dict[str, str]) -> None:
    with connect(client, tokens["viewer"]) as ws:
        ws.receive_json()
        send(ws, 3, "claim")
        error = recv_type(ws, "error")
        assert "viewer" in error["message"] and error["ref_seq"] == 3


def test_lease_times_out_without_input(tmp_path, bridge: FakeBridge) -> None:
    from app_helpers import make_settings

    from server.app import create_app

    settings = make_settings(tmp_path, [bridge])
    settings.teleop.lease_timeout_s = 0.3
    with TestClient(create_app(settings, record=False)) as client:
        store = client.app.state.tandem.store  # type: ignore[attr-defined]
        op = store.auth.create_operator("op", "operator", "secret-pass")
        token = store.auth.issue_token(op.id, 60)
        with connect(client, token) as ws:
            ws.receive_json()
            assert claim(ws)["you_hold"]
            lost = recv_type(ws, "lease")  # pushed by the watchdog, no input sent
            assert lost["you_hold"] is False and lost["holder"] is None
            send(ws, 2, "gamepad", **gamepad(True))
            assert "do not hold" in recv_type(ws, "error")["message"]


def test_gamepad_input_reaches_bridge_as_teleop_action(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    with connect(client, tokens["op"]) as ws:
        ws.receive_json()
        claim(ws)
        send(ws, 2, "gamepad", **gamepad(True, x=0.8))
        got = bridge.wait_for("teleop_action")
        assert got, "no teleop action reached the bridge"
        body = got[0].command.body
        assert isinstance(body, TeleopAction) and body.operator == "op"
        assert len(body.action) == 7 and any(abs(a) > 0.1 for a in body.action[:3])
        # deadman released: one neutral input (action None) clears the bridge's pending
        # action, then nothing more is sent while the deadman stays released
        count = len(bridge.wait_for("teleop_action"))
        send(ws, 3, "gamepad", **gamepad(False, x=0.8))
        send(ws, 4, "gamepad", **gamepad(False, x=0.8))
        send(ws, 5, "ping", t_client=now_ms())
        recv_type(ws, "pong")
        time.sleep(0.1)
        after = bridge.wait_for("teleop_action", timeout=0)[count:]
        assert [r.command.body.action for r in after] == [None]  # type: ignore[union-attr]
        assert abs(after[0].command.body.t_input - time.monotonic()) < 5  # type: ignore[union-attr]


def test_keyboard_and_xr_inputs_are_mapped(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    bridge.publish_status(mode=ControlMode.TELEOP)
    wait_until(lambda: client.app.state.tandem.link.status(None), what="bridge status")  # type: ignore[attr-defined]
    with connect(client, tokens["op"]) as ws:
        ws.receive_json()
        claim(ws)
        send(ws, 2, "keyboard", keys=["Space", "KeyW"], t_input=now_ms())
        assert bridge.wait_for("teleop_action"), "keyboard input did not reach the bridge"
        before = len(bridge.received)
        pose = {"hand": "right", "position": [0.0, 1.0, -0.3], "orientation": [0, 0, 0, 1]}
        for i, dx in enumerate((0.0, 0.0, 0.02, 0.04)):
            controller = {**pose, "position": [dx, 1.0, -0.3], "buttons": {"squeeze": 1.0}}
            send(ws, 3 + i, "xr", controller=controller, t_input=now_ms())
        send(ws, 9, "xr_event", kind="recenter", t_input=now_ms())
        send(ws, 10, "ping", t_client=now_ms())
        recv_type(ws, "pong")
        wait_until(lambda: len(bridge.received) > before, what="an XR-driven action")


def test_input_in_idle_is_refused_with_the_reason_once_a_second(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    bridge.publish_status()  # idle
    link = client.app.state.tandem.link  # type: ignore[attr-defined]
    wait_until(lambda: link.status(None), what="bridge status")
    with connect(client, tokens["op"]) as ws:
        ws.receive_json()
        claim(ws)
        for seq in range(2, 7):
            send(ws, seq, "keyboard", keys=["KeyW"], t_input=now_ms())
        send(ws, 9, "ping", t_client=now_ms())
        replies = []
        while (msg := ws.receive_json())["type"] != "pong":
            replies.append(msg)
        errors = [m for m in replies if m["type"] == "error"]
        assert len(errors) == 1, replies  # five refused inputs, one message
        assert errors[0]["ref_seq"] == 2
        assert errors[0]["message"] == (
            "input refused: the robot is in idle; press Start demo to drive"
        )
    assert not bridge.wait_for("teleop_action", timeout=0.2)


def test_input_without_lease_is_refused(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    with connect(client, tokens["op"]) as ws:
        ws.receive_json()
        send(ws, 5, "gamepad", **gamepad(True))
        error = recv_type(ws, "error")
        assert error["ref_seq"] == 5 and "lease" in error["message"]
    assert not bridge.wait_for("teleop_action", timeout=0.2)


def test_commands_are_acked_with_the_bridge_reason(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    with connect(client, tokens["op"]) as ws:
        ws.receive_json()
        send(ws, 1, "command", name="start_demo")
        refused = recv_type(ws, "ack")
        assert refused["ok"] is False and "claim control" in refused["reason"]
        claim(ws, 2)
        script = [
            ("start_demo", True),
            ("take_over", False),
            ("success", True),
            ("reset_done", True),
            ("start_rollout", True),
            ("take_over", True),
            ("hand_back", True),
            ("failure", True),
            ("reset_done", True),
            ("start_rollout", True),
            ("discard", True),
        ]
        for i, (name, ok) in enumerate(script, start=10):
            send(ws, i, "command", name=name, reason="test")
            ack = recv_type(ws, "ack")
            assert ack["ref_seq"] == i and ack["name"] == name and ack["ok"] is ok, ack
            if not ok:
                assert "not allowed in mode" in ack["reason"]
        assert ack["mode"] == ControlMode.AWAIT_RESET.value
    labels = [r.command.body for r in bridge.received if isinstance(r.command.body, EndEpisode)]
    assert [b.label for b in labels] == [Outcome.SUCCESS, Outcome.FAILURE, Outcome.DISCARD]


def test_estop_from_viewer_without_lease_and_clear_needs_operator(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    with connect(client, tokens["viewer"]) as ws:
        ws.receive_json()
        send(ws, 1, "command", name="estop", reason="viewer saw a problem")
        ack = recv_type(ws, "ack")
        assert ack["ok"] is True and ack["mode"] == "estop"
        send(ws, 2, "command", name="clear_estop")
        ack = recv_type(ws, "ack")
        assert ack["ok"] is False and "viewer" in ack["reason"]
    assert bridge.mode is ControlMode.ESTOP
    with connect(client, tokens["op"]) as ws:
        ws.receive_json()
        send(ws, 3, "command", name="clear_estop")
        assert recv_type(ws, "ack")["ok"] is True
    assert bridge.mode is ControlMode.IDLE


def test_ping_pong(client: TestClient, tokens: dict[str, str]) -> None:
    with connect(client, tokens["viewer"]) as ws:
        ws.receive_json()
        t0 = now_ms()
        send(ws, 7, "ping", t_client=t0)
        pong = recv_type(ws, "pong")
        assert pong["t_client"] == t0 and abs(pong["t_server"] - now_ms()) < 5000


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"seq": 4}', "no 'type'"),
        ('{"v": 1, "seq": 4, "type": "fly"}', "unknown message type"),
        ('{"v": 1, "seq": 4, "type": "gamepad", "axes": [9], "t_input": 1}', "axes"),
        ('{"v": 1, "seq": 4, "type": "command", "name": "self_destruct"}', "name"),
        ('{"v": 2, "seq": 4, "type": "ping", "t_client": 1}', "version"),
        ('{"v": 1, "seq": 4, "type": "ping", "t_client": NaN}', "NaN"),
    ],
)
def test_bad_messages_get_an_error_and_the_socket_stays_open(
    client: TestClient, tokens: dict[str, str], raw: str, needle: str
) -> None:
    with connect(client, tokens["op"]) as ws:
        ws.receive_json()
        ws.send_text(raw)
        error = recv_type(ws, "error")
        assert needle in error["message"], error
        ws.send_bytes(b"\xff\xfe")
        assert "UTF-8" in recv_type(ws, "error")["message"]
        send(ws, 9, "ping", t_client=1.0)
        assert recv_type(ws, "pong")["t_client"] == 1.0


def test_bridge_that_does_not_answer_gives_a_timeout_ack(tmp_path, tokens_free=None) -> None:
    from app_helpers import make_settings

    from server.app import create_app

    silent = FakeBridge("robot0", answer=False).start()
    try:
        settings = make_settings(tmp_path, [silent], command_timeout_s=0.3)
        with TestClient(create_app(settings, record=False)) as client:
            store = client.app.state.tandem.store  # type: ignore[attr-defined]
            token = store.auth.issue_token(
                store.auth.create_operator("op", "operator", "pw-pw-pw").id, 60
            )
            with connect(client, token) as ws:
                ws.receive_json()
                send(ws, 1, "command", name="estop")
                ack = recv_type(ws, "ack")
                assert ack["ok"] is False and "did not answer" in ack["reason"]
    finally:
        silent.stop()


def test_cross_origin_cookie_websocket_is_refused(
    client: TestClient, tokens: dict[str, str]
) -> None:
    client.cookies.set("tandem_token", tokens["op"])
    evil = {"origin": "http://evil.example"}
    with client.websocket_connect("/ws/control", headers=evil) as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 4403
    with client.websocket_connect("/ws/control", headers={"origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "lease"  # same origin: the cookie is fine


def _sessions(client: TestClient) -> list[tuple[str, object]]:
    from sqlalchemy import select

    from server.db.models import OperatingSession, Operator

    store = client.app.state.tandem.store  # type: ignore[attr-defined]
    with store.session() as s:
        rows = s.execute(
            select(Operator.name, OperatingSession.ended_at).join(
                Operator, Operator.id == OperatingSession.operator_id
            )
        ).all()
        return [(name, ended) for name, ended in rows]
