"""/ws/telemetry and /ws/camera with the real app, a fake bridge and a learner PUB."""

from __future__ import annotations

import struct
import time
from typing import Any

import cv2
import numpy as np
import pytest
import zmq
from conftest import wait_until
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
    wait_until(lambda: store.metrics_history("run1").get("critic/loss"), what="metrics history")
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
                bridge.publish_frame("front", jpeg(seq % 250), seq, t_capture)
                bridge.publish_frame("wrist", jpeg(7), seq, t_capture)  # another camera: not sent
                hubs = client.app.state.tandem.hubs  # type: ignore[attr-defined]
                robot = "robot0" if "robot" in query else ""
                if hubs.camera(robot, "front")._boxes and seq > 3:
                    break
                time.sleep(0.01)
            data = ws.receive_bytes()
            frame_seq, flags, t_cap_ms, t_send_ms = struct.unpack("<IIdd", data[:24])
            assert 1 <= frame_seq < 200 and flags == 0
            assert 0 <= t_send_ms - t_cap_ms < 5000
            assert abs(t_send_ms - time.time() * 1000) < 5000
            image = cv2.imdecode(np.frombuffer(data[24:], np.uint8), cv2.IMREAD_COLOR)
            assert image.shape == (48, 64, 3)


@pytest.mark.parametrize("query", ["cam=", "cam=../etc", "cam=front&robot=a%20b"])
def test_camera_rejects_bad_names(client: TestClient, tokens: dict[str, str], query: str) -> None:
    with client.websocket_connect(f"/ws/camera?{query}&token={tokens['op']}") as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_bytes()
        assert info.value.code == 4403
