"""End to end with the real robot bridge process (mock robot) and the real app.

Operator claims control over /ws/control, records a demonstration with gamepad
input, labels it a success, confirms the reset; the recorder stores it and the
API, telemetry and camera streams show it. Then an HTTP e-stop.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from app_helpers import auth, wait_until
from fastapi.testclient import TestClient

from server.app import create_app
from tandem.settings import load_settings

pytestmark = [pytest.mark.timeout(120), pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]


def endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def send(ws: Any, seq: int, msg_type: str, **fields: Any) -> None:
    ws.send_text(json.dumps({"v": 1, "seq": seq, "type": msg_type, **fields}))


def ack(ws: Any) -> dict[str, Any]:
    while (msg := ws.receive_json())["type"] != "ack":
        pass
    return msg


def gamepad(seq: int) -> str:
    buttons = [{"pressed": i == 5, "value": float(i == 5)} for i in range(17)]
    return json.dumps(
        {
            "v": 1,
            "seq": seq,
            "type": "gamepad",
            "axes": [0.6, -0.4, 0.0, 0.0],
            "buttons": buttons,
            "t_input": time.time() * 1000,
        }
    )


@pytest.fixture
def real_bridge() -> Any:
    pub, cmd = endpoint(), endpoint()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tandem",
            "bridge",
            "--robot",
            "mock",
            "--pub",
            pub,
            "--cmd",
            cmd,
            "--rate",
            "20",
            "--policy",
            "none",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    yield pub, cmd
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_demo_recorded_through_the_real_bridge(
    tmp_path: Path, real_bridge: tuple[str, str]
) -> None:
    pub, cmd = real_bridge
    settings = load_settings(
        data_dir=tmp_path / "data",
        server={
            "bridges": [pub],
            "bridge_cmd_endpoints": [cmd],
            "learner_metrics_endpoint": "",
            "web_dir": str(tmp_path / "none"),
            "command_timeout_s": 3.0,
        },
    )
    with TestClient(create_app(settings)) as client:
        state = client.app.state.tandem  # type: ignore[attr-defined]
        token = state.store.auth.issue_token(
            state.store.auth.create_operator("op", "operator", "pw-pw-pw").id, 600
        )
        wait_until(state.link.robots, 60, "the bridge's first status")
        time.sleep(0.5)  # the recorder's SUB connects alongside the link's
        robot = state.link.robots()[0]
        with (
            client.websocket_connect(f"/ws/telemetry?token={token}") as telemetry,
            client.websocket_connect(f"/ws/control?token={token}") as ws,
        ):
            send(ws, 1, "claim")
            send(ws, 2, "command", name="start_demo")
            started = ack(ws)
            assert started["ok"] and started["mode"] == "teleop", started
            for i in range(30):
                ws.send_text(gamepad(10 + i))
                time.sleep(0.05)
            send(ws, 50, "command", name="success")
            ended = ack(ws)
            assert ended["ok"] and ended["mode"] == "await_reset", ended
            send(ws, 51, "command", name="reset_done")
            assert ack(ws)["ok"]
            seen: dict[str, list[dict[str, Any]]] = {}
            while "episode_summary" not in seen:
                msg = telemetry.receive_json()
                seen.setdefault(msg["type"], []).append(msg)
            assert seen["state"][0]["robot_id"] == robot
            assert any(m["source"] == "human" for m in seen["rollout"])
            summary = seen["episode_summary"][0]
            assert summary["episode_kind"] == "demo" and summary["length"] > 0
        h = auth(token)
        episode_id = summary["episode_id"]
        ep = wait_until(
            lambda: (
                (r := client.get(f"/api/episodes/{episode_id}", headers=h)).status_code == 200
                and not r.json()["recording"]
                and r.json()
            ),
            30,
            "the recorded demo",
        )
        assert (
            ep["kind"] == "demo"
            and ep["outcome"] == "success"
            and ep["length"] == summary["length"]
        )
        arrays = client.get(f"/api/episodes/{episode_id}/arrays", headers=h).json()
        assert "human" in arrays["action_source"]
        camera = arrays["cameras"][0]
        frame = client.get(f"/api/episodes/{episode_id}/frames/{camera}/0", headers=h)
        assert frame.status_code == 200 and frame.content[:2] == b"\xff\xd8"
        with client.websocket_connect(f"/ws/camera?cam={camera}&token={token}") as cam:
            assert cam.receive_bytes()[24:26] == b"\xff\xd8"
        resets = wait_until(lambda: client.get("/api/resets", headers=h).json(), 10, "reset row")
        assert resets[0]["robot_id"] == robot
        stop = client.post("/api/estop", json={"reason": "e2e"}, headers=h)
        assert stop.status_code == 200 and stop.json()["results"][0]["mode"] == "estop"
        cleared = client.post("/api/estop/clear", json={}, headers=h)
        assert cleared.status_code == 200, cleared.text
