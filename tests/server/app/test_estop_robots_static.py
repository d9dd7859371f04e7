"""E-stop over HTTP, robot/server status, static files mounted last, and `tandem server`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from app_helpers import auth, make_settings, wait_until
from fastapi.testclient import TestClient

from server.app import create_app
from server.fake_bridge import FakeBridge
from tandem.messages import ControlMode

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[3]


def test_estop_works_for_viewers_and_clear_needs_operator(
    client: TestClient, tokens: dict, bridge: FakeBridge
) -> None:
    assert client.post("/api/estop", json={}).status_code == 401
    bridge.publish_status()
    response = client.post(
        "/api/estop", json={"reason": "hand in workspace"}, headers=auth(tokens["viewer"])
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True and result["results"][0]["mode"] == "estop"
    assert bridge.mode is ControlMode.ESTOP
    assert bridge.wait_for("estop")[0].command.body.reason == "hand in workspace"
    assert (
        client.post("/api/estop/clear", json={}, headers=auth(tokens["viewer"])).status_code == 403
    )
    cleared = client.post("/api/estop/clear", json={}, headers=auth(tokens["op"]))
    assert cleared.status_code == 200 and bridge.mode is ControlMode.IDLE
    again = client.post("/api/estop/clear", json={}, headers=auth(tokens["op"]))
    assert again.status_code == 502 and "not allowed" in again.json()["results"][0]["reason"]


def test_estop_of_one_named_robot_and_unknown_robot(
    client: TestClient, tokens: dict, bridge: FakeBridge
) -> None:
    wait_until(
        lambda: bridge.publish_status() or client.app.state.tandem.link.robots(), what="robot"
    )  # type: ignore[attr-defined]
    ok = client.post("/api/estop", json={"robot_id": "robot0"}, headers=auth(tokens["op"]))
    assert ok.status_code == 200 and ok.json()["results"][0]["robot"] == "robot0"
    bad = client.post("/api/estop", json={"robot_id": "robot9"}, headers=auth(tokens["op"]))
    assert bad.status_code == 502 and "unknown robot" in bad.json()["results"][0]["reason"]


def test_estop_not_confirmed_is_a_502(tmp_path: Path) -> None:
    silent = FakeBridge(answer=False).start()
    try:
        settings = make_settings(tmp_path, [silent], command_timeout_s=0.2)
        with TestClient(create_app(settings, record=False)) as client:
            store = client.app.state.tandem.store  # type: ignore[attr-defined]
            token = store.auth.issue_token(
                store.auth.create_operator("v", "viewer", "pw-pw-pw").id, 60
            )
            response = client.post("/api/estop", json={}, headers=auth(token))
            assert response.status_code == 502
            assert "did not answer" in response.json()["results"][0]["reason"]
            assert silent.wait_for("estop"), "the e-stop was not even sent"
    finally:
        silent.stop()


def test_robots_state_and_resets(client: TestClient, tokens: dict, bridge: FakeBridge) -> None:
    h = auth(tokens["viewer"])
    wait_until(
        lambda: bridge.publish_status(step=9) or client.app.state.tandem.link.robots(), what="robot"
    )  # type: ignore[attr-defined]
    robots = client.get("/api/robots", headers=h).json()
    assert robots[0]["robot_id"] == "robot0" and robots[0]["online"] is True
    assert robots[0]["status"]["step"] == 9 and robots[0]["lease"] is None
    state = client.get("/api/state", headers=h).json()
    assert state["link"]["statuses"] >= 1 and state["recorder"] is not None
    assert client.get("/api/resets", headers=h).json() == []
    bridge.publish_status(mode="await_reset")
    time.sleep(0.2)
    bridge.publish_status(mode="idle")
    resets = wait_until(lambda: client.get("/api/resets", headers=h).json(), what="a reset row")
    assert resets[0]["robot_id"] == "robot0" and 0.1 < resets[0]["duration_s"] < 5
    assert client.get("/api/robots").status_code == 401


def test_static_files_never_shadow_routes(client: TestClient, tokens: dict) -> None:
    index = client.get("/")
    assert index.status_code == 200 and "Tandem" in index.text
    assert index.headers["cache-control"] == "no-cache"
    assert client.get("/openapi.json").json()["info"]["title"] == "Tandem"
    assert client.get("/api/auth/me").status_code == 401  # an API route, not a static 404
    with client.websocket_connect(f"/ws/telemetry?token={tokens['viewer']}") as ws:
        assert ws.receive_json()["type"] == "hello"


def test_app_without_web_dir_and_without_bridges(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, [], web_dir=str(tmp_path / "missing"))
    with TestClient(create_app(settings)) as client:
        assert client.get("/").status_code == 404
        store = client.app.state.tandem.store  # type: ignore[attr-defined]
        token = store.auth.issue_token(
            store.auth.create_operator("o", "operator", "pw-pw-pw").id, 60
        )
        assert client.post("/api/estop", json={}, headers=auth(token)).status_code == 502
        with client.websocket_connect(f"/ws/control?token={token}") as ws:
            from starlette.websockets import WebSocketDisconnect

            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_json()
            assert info.value.code == 4403


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.e2e
def test_tandem_server_command(tmp_path: Path, bridge: FakeBridge) -> None:
    """`tandem server` as a real process: login link on stdout, API up, clean SIGINT exit."""
    port = _free_port()
    env = {
        **os.environ,
        "TANDEM_DATA_DIR": str(tmp_path / "data"),
        "TANDEM_SERVER__BRIDGES": json.dumps([bridge.pub_endpoint]),
        "TANDEM_SERVER__BRIDGE_CMD_ENDPOINTS": json.dumps([bridge.cmd_endpoint]),
        "TANDEM_SERVER__LEARNER_METRICS_ENDPOINT": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tandem", "server", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "log in at" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            assert line or proc.poll() is None, "server exited early"
        match = re.search(r"(http://\S+/login\?token=\S+)", line)
        assert match, line
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(base), 20, "the HTTP server")
        with httpx.Client(base_url=base) as http:
            login = http.get(match.group(1), follow_redirects=False)
            assert login.status_code == 303
            assert http.get("/api/auth/me").json()["name"] == "admin"
            assert http.get("/openapi.json").status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "data" / "logs" / "server.log").exists()


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_asgi_entry_point_builds_the_app(tmp_path: Path) -> None:
    """`uvicorn server.main:app` works: main.py only builds the app from the settings."""
    code = "import server.main as m; print(sorted(m.app.openapi()['paths']))"
    env = {**os.environ, "TANDEM_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "/api/episodes" in out.stdout and "/api/estop" in out.stdout
