"""``GET /api/processes``: the supervisor's status file as the dashboard sees it."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_helpers import auth, wait_until
from fastapi.testclient import TestClient

from tandem.cli.supervisor import Backoff, ChildSpec, Supervisor
from tandem.settings import Settings

pytestmark = pytest.mark.timeout(60)

# Exits with code 3 the first time (leaving a marker), then stays up until SIGTERM.
CRASH_ONCE = """
import pathlib, sys, time
marker = pathlib.Path(sys.argv[1])
if not marker.exists():
    marker.write_text("crashed")
    sys.exit(3)
print("up", flush=True)
while True:
    time.sleep(0.05)
"""


def status_file(settings: Settings) -> Path:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.data_dir / "processes.json"


@pytest.fixture
def supervisor(settings: Settings, tmp_path: Path) -> Iterator[Supervisor]:
    """A real Supervisor writing the server's status file, running a child that crashes once."""
    spec = ChildSpec("learner", [sys.executable, "-c", CRASH_ONCE, str(tmp_path / "crashed")])
    sup = Supervisor(
        [spec],
        tmp_path / "logs",
        status_file(settings),
        backoff=Backoff(initial_s=0.2, max_s=0.2),
        console=io.StringIO(),
    )
    thread = threading.Thread(target=sup.run, kwargs={"poll_s": 0.05}, daemon=True)
    thread.start()
    yield sup
    sup.stop()
    thread.join(20)


def get_processes(client: TestClient, token: str) -> dict:
    response = client.get("/api/processes", headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def test_without_a_status_file_the_server_is_not_supervised(
    client: TestClient, tokens: dict, settings: Settings
) -> None:
    assert not (settings.data_dir / "processes.json").exists()
    body = get_processes(client, tokens["viewer"])
    assert body["supervised"] is False and body["children"] == []
    assert body["t_wall"] is None and body["supervisor_alive"] is None
    assert abs(body["server_time"] - time.time()) < 5


def test_a_crash_and_restart_by_a_real_supervisor(
    client: TestClient, tokens: dict, supervisor: Supervisor
) -> None:
    started = time.time()

    def restarted_and_running() -> dict | None:
        body = get_processes(client, tokens["viewer"])
        child = body["children"][0] if body["children"] else {}
        return body if child.get("restarts") == 1 and child.get("status") == "running" else None

    body = wait_until(restarted_and_running, 10.0, "the crashed child to be restarted")
    assert body["supervised"] is True and body["supervisor_alive"] is True
    child = body["children"][0]
    assert child["role"] == "learner" and child["last_exit_code"] == 3
    assert started - 5 <= child["last_exit_wall"] <= child["started_wall"] <= body["t_wall"]
    assert child["pid"] == supervisor.states()[0].pid and child["next_start_wall"] is None

    supervisor.stop()
    wait_until(
        lambda: get_processes(client, tokens["op"])["children"][0]["status"] == "stopped",
        20.0,
        "the child to be stopped",
    )
    child = get_processes(client, tokens["op"])["children"][0]
    assert child["pid"] is None and child["last_exit_wall"] >= child["started_wall"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"t_wall": 1.0, "children": [{"role": "ser', "Invalid JSON"),
        (b"\xff\xfe\x00garbage", "Invalid JSON"),
        (b'{"t_wall": 1.0, "children": [{"role": "bridge", "status": "zombie"}]}', "status"),
        (b'{"children": []}', "t_wall"),
    ],
    ids=["partial", "binary", "unknown-status", "missing-field"],
)
def test_a_corrupt_status_file_is_a_clear_503(
    client: TestClient, tokens: dict, settings: Settings, content: bytes, reason: str
) -> None:
    status_file(settings).write_bytes(content)
    response = client.get("/api/processes", headers=auth(tokens["viewer"]))
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "processes.json is not a valid process table" in detail and reason in detail


def test_an_unreadable_status_file_is_a_503(
    client: TestClient, tokens: dict, settings: Settings
) -> None:
    status_file(settings).mkdir()  # reading a directory fails with an OSError
    response = client.get("/api/processes", headers=auth(tokens["viewer"]))
    assert response.status_code == 503 and "cannot read" in response.json()["detail"]


def test_a_file_left_by_a_supervisor_that_is_gone(
    client: TestClient, tokens: dict, settings: Settings
) -> None:
    dead = _exited_pid()
    status_file(settings).write_text(
        f'{{"t_wall": 1.0, "supervisor_pid": {dead}, "children": [{{"role": "server", '
        '"status": "stopped", "restarts": 2, "last_exit_code": -15}]}'
    )
    body = get_processes(client, tokens["viewer"])
    assert body["supervised"] is True and body["supervisor_alive"] is False
    assert body["children"][0]["restarts"] == 2 and body["children"][0]["last_exit_wall"] is None


def test_processes_need_a_login(client: TestClient, settings: Settings) -> None:
    status_file(settings).write_text('{"t_wall": 1.0, "children": []}')
    assert client.get("/api/processes").status_code == 401
    bad = client.get("/api/processes", headers=auth("not-a-token"))
    assert bad.status_code == 401


def _exited_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
