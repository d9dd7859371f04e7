"""/ws/telemetry and /ws/camera with the real app, a fake bridge and a learner PUB."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zmq
from app_helpers import wait_until
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from server.fake_bridge import FakeBridge
from tandem import wire
from tandem.messages import LearnerMetrics

pytestmark = pytest.mark.timeout(60)


def next_of(ws: WebSocketTestSession, kind: str, limit: int = 200) -> dict[str, Any]:
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind!r} message among {limit}")


def jpeg(value: int) -> bytes:
    image = np.full((48, 64, 3), value, np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def test_telemetry_requires_a_token(client: TestClient) -> None:
    with (
        client.websocket_connect("/ws/telemetry") as ws,
        pytest.raises(WebSocketDisconnect) as info,
    ):
        ws.receive_json()
    assert info.value.code == 4401


def test_telemetry_state_rollout_and_summary(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    with client.websocket_connect(f"/ws/telemetry?token={tokens['viewer']}") as ws:
        hello = next_of(ws, "hello")
        assert hello["role"] == "viewer" and hello["user"] == "viewer"
        bridge.publish_status(step=3)  # the SUB may join late: publish until it arrives
        state = None
        for _ in range(50):
            bridge.publish_status(step=3)
            try:
                state = next_of(ws, "state", limit=1)
                break
            except AssertionError:
                continue
        assert state is not None
        assert state["robot_id"] == "robot0" and state["mode"] == "idle" and state["step"] == 3
        bridge.publish_episode("ep1", "start")
        for step in range(4):
            bridge.publish_step("ep1", step, reward=1.0, intervention=step in (1, 2), q=(0.5, 0.7))
        bridge.publish_episode("ep1", "end", reason="success", num_steps=4, terminated=True)
        assert next_of(ws, "episode_start")["episode_id"] == "ep1"
        rollout = next_of(ws, "rollout")
        assert rollout["step"] == 0 and rollout["source"] == "policy"
        assert rollout["q_il"] == 0.5 and rollout["q_rl"] == 0.7 and rollout["proposal"] == "rl"
        summary = next_of(ws, "episode_summary")
        assert summary["length"] == 4 and summary["return"] == 4.0
        assert summary["interventions"] == 1 and summary["intervention_steps"] == 2
        assert summary["intervention_rate"] == 0.5 and summary["success"] is True
        assert summary["result"] == "assisted_success"  # a human drove 2 of its steps
        bridge.publish_episode("ep1", "label", reason="relabel", outcome="failure")
        label = next_of(ws, "episode_label")
        assert label["episode_id"] == "ep1" and label["outcome"] == "failure"


def test_telemetry_batches_learner_metrics(
    client: TestClient, tokens: dict[str, str], learner_pub: tuple[zmq.Socket, str]
) -> None:
    sock, _ = learner_pub
    with client.websocket_connect(f"/ws/telemetry?token={tokens['op']}") as ws:
        next_of(ws, "hello")
        link = client.app.state.tandem.link  # type: ignore[attr-defined]
        for i in range(200):
            msg = LearnerMetrics(
                seq=i,
                run_id="run1",
                update_step=i,
                env_steps=10 * i,
                metrics={"critic/loss": 1.0 / (i + 1), "q/mean": 2.0},
            )
            wire.send(sock, msg)
            if link.stats.metrics and i > 20:
                break
            time.sleep(0.01)
        batch = next_of(ws, "metrics")
        assert batch["rows"] and batch["rows"][0]["run_id"] == "run1"
        assert batch["rows"][0]["scalars"]["q/mean"] == 2.0
    store = client.app.state.tandem.store  # type: ignore[attr-defined]
    wait_until(
        lambda: store.metrics.metrics_history("run1").get("critic/loss"), what="metrics history"
    )
    response = client.get(
        "/api/metrics/run1", headers={"Authorization": f"Bearer {tokens['viewer']}"}
    )
    assert response.status_code == 200 and response.json()["series"]["critic/loss"]
    latest = client.get(
        "/api/metrics/latest", headers={"Authorization": f"Bearer {tokens['viewer']}"}
    )
    assert latest.json()[0]["run_id"] == "run1"
    runs = client.get("/api/metrics/runs", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert [r["id"] for r in runs.json()] == ["run1"]


def test_camera_frames_have_header_and_jpeg(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    link = client.app.state.tandem.link  # type: ignore[attr-defined]
    for query in ("cam=front", "cam=front&robot=robot0"):
        wait_until(lambda: bridge.publish_status() or link.robots(), what="robot id")
        with client.websocket_connect(f"/ws/camera?{query}&token={tokens['viewer']}") as ws:
            data = None
            for seq in range(1, 200):
                t_capture = time.monotonic()
                bridge.publish_frame("front", jpeg(seq % 250), seq, t_capture, shape=(48, 64))
                bridge.publish_frame(
                    "wrist", jpeg(7), seq, t_capture, shape=(48, 64)
                )  # another camera: not sent
                hubs = client.app.state.tandem.hubs  # type: ignore[attr-defined]
                robot = "robot0" if "robot" in query else ""
                if hubs.camera(robot, "front").mailboxes() and seq > 3:
                    break
                time.sleep(0.01)
            data = ws.receive_bytes()
            frame_seq, flags, t_cap_ms, t_send_ms = struct.unpack("<IIdd", data[:24])
            assert 1 <= frame_seq < 200 and flags == 0
            assert 0 <= t_send_ms - t_cap_ms < 5000
            assert abs(t_send_ms - time.time() * 1000) < 5000
            image = cv2.imdecode(np.frombuffer(data[24:], np.uint8), cv2.IMREAD_COLOR)
            assert image.shape == (48, 64, 3)


def test_malformed_bridge_messages_are_counted_and_the_stream_goes_on(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    link = client.app.state.tandem.link  # type: ignore[attr-defined]
    wait_until(lambda: bridge.publish_status() or link.robots(), what="robot id")
    garbage = [
        [b"frame", b"{not json", b"x"],
        [b"frame", b"{}"],
        [b"status", b'{"v": 1}'],
        [b"nonsense", b"{}"],
        [b"\xff"],
    ]
    with client.websocket_connect(f"/ws/camera?cam=front&token={tokens['viewer']}") as ws:
        hub = client.app.state.tandem.hubs.camera("", "front")  # type: ignore[attr-defined]
        wait_until(hub.mailboxes, what="subscription")
        for parts in garbage:
            bridge.publish_raw(parts)
        bridge.publish_frame("front", jpeg(9), 77, time.monotonic(), shape=(48, 64))
        assert struct.unpack("<IIdd", ws.receive_bytes()[:24])[0] == 77
    assert link.stats.bad_messages >= len(garbage)


@pytest.mark.parametrize("query", ["cam=", "cam=../etc", "cam=front&robot=a%20b"])
def test_camera_rejects_bad_names(client: TestClient, tokens: dict[str, str], query: str) -> None:
    with client.websocket_connect(f"/ws/camera?{query}&token={tokens['op']}") as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_bytes()
        assert info.value.code == 4403


def _stalled_websocket(host: str, port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


@pytest.mark.slow
def test_stalled_camera_client_drops_frames_instead_of_queueing(
    tmp_path: Path, bridge: FakeBridge
) -> None:
    """Real uvicorn: a client that stops reading costs one pending frame, never a backlog."""
    from app_helpers import LiveServer, make_settings

    from server.app import create_app

    app = create_app(make_settings(tmp_path, [bridge]), record=False)
    store = app.state.tandem.store
    token = store.auth.issue_token(store.auth.create_operator("v", "viewer", "pw-pw-pw").id, 60)
    frames = 120
    blob = bytes(range(256)) * 1024  # 256 KiB: more than the socket buffers hold
    with LiveServer(app) as server:
        link = app.state.tandem.link
        wait_until(lambda: bridge.publish_status() or link.robots(), what="robot id")
        sock = _stalled_websocket("127.0.0.1", server.port, f"/ws/camera?cam=front&token={token}")
        try:
            hub = app.state.tandem.hubs.camera("", "front")
            wait_until(hub.mailboxes, 5.0, "subscription")
            pending = 0
            for seq in range(1, frames + 1):
                bridge.publish_frame("front", blob, seq, time.monotonic())
                time.sleep(0.005)
                pending = max([pending, *(box.pending() for box in hub.mailboxes())])
            box = hub.mailboxes()[0]
            wait_until(lambda: box.stats.replaced + box.stats.delivered >= frames - 5, 5.0,
                       "the frames to reach the mailbox")  # fmt: skip
            stats = box.stats
        finally:
            sock.close()
    assert pending <= 1, "a mailbox must never hold more than one frame per camera"
    assert stats.replaced > frames / 2, f"only {stats.replaced} frames were dropped: {stats}"
    assert stats.delivered < frames / 2


def test_bogus_camera_names_neither_pile_up_nor_lock_out_the_real_camera(
    client: TestClient, tokens: dict[str, str], bridge: FakeBridge
) -> None:
    hubs = client.app.state.tandem.hubs  # type: ignore[attr-defined]
    link = client.app.state.tandem.link  # type: ignore[attr-defined]
    wait_until(lambda: bridge.publish_status() or link.robots(), what="robot id")
    for i in range(hubs.max_unknown_cameras + 20):  # one viewer after another: each hub freed
        with client.websocket_connect(f"/ws/camera?cam=bogus{i}&token={tokens['viewer']}"):
            pass
    wait_until(lambda: hubs.camera_count() == 0, what="the bogus hubs to be released")
    # A bridge has sent frames of "front": that name is real.
    wait_until(
        lambda: (
            bridge.publish_frame("front", jpeg(3), 1, time.monotonic(), shape=(48, 64))
            or link.stats.frames
        ),
        what="a first frame",
    )
    held = [
        client.websocket_connect(f"/ws/camera?cam=held{i}&token={tokens['viewer']}").__enter__()
        for i in range(hubs.max_unknown_cameras)
    ]
    try:
        wait_until(lambda: hubs.camera_count() == hubs.max_unknown_cameras, what="held hubs")
        with client.websocket_connect(f"/ws/camera?cam=one-more&token={tokens['viewer']}") as ws:
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_bytes()
            assert info.value.code == 4403
        with client.websocket_connect(f"/ws/camera?cam=front&token={tokens['viewer']}") as ws:
            for seq in range(2, 400):
                bridge.publish_frame("front", jpeg(4), seq, time.monotonic(), shape=(48, 64))
                if hubs.frame_hub("", "front") and hubs.frame_hub("", "front").mailboxes():
                    break
                time.sleep(0.01)
            assert struct.unpack("<IIdd", ws.receive_bytes()[:24])[0] >= 2
    finally:
        for ws in held:
            ws.__exit__(None, None, None)
