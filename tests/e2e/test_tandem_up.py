"""`tandem up` as a user runs it: real server, sim bridge and learner processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def children(data: Path) -> dict[str, dict]:
    try:
        status = json.loads((data / "processes.json").read_text())
    except (OSError, ValueError):
        return {}
    return {c["role"]: c for c in status["children"]}


def test_up_runs_everything_and_stops_cleanly(tmp_path: Path):
    data, port = tmp_path / "data", free_port()
    tcp = {name: f"tcp://127.0.0.1:{free_port()}" for name in ("pub", "cmd", "w", "m")}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")},
        "TANDEM_DATA_DIR": str(data),
        "TANDEM_SERVER__PORT": str(port),
        "TANDEM_BRIDGE__PUB_ENDPOINT": tcp["pub"],
        "TANDEM_BRIDGE__CMD_ENDPOINT": tcp["cmd"],
        "TANDEM_LEARNER__WEIGHTS_ENDPOINT": tcp["w"],
        "TANDEM_LEARNER__METRICS_ENDPOINT": tcp["m"],
        "MUJOCO_GL": "egl",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tandem", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()

    def logged(text: str) -> bool:
        return any(text in line for line in list(lines))

    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/"), 90, "the dashboard")
        wait_for(lambda: logged("[bridge]") and logged("publishing on"), 90, "the bridge")
        wait_for(lambda: logged("[learner]") and logged("ingest subscribed"), 90, "the learner")
        running = wait_for(
            lambda: (
                {r for r, c in children(data).items() if c["status"] == "running"}
                == {"server", "bridge", "learner"}
            ),
            60,
            "every child to run",
        )
        assert running
        assert all(c["restarts"] == 0 for c in children(data).values())
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    output = "".join(lines)
    assert "login?token=" in output  # the one-time login link reaches the console
    assert "[server] " in output and "learner stopped" in output  # role-prefixed child logs
    stopped = children(data)
    assert {c["status"] for c in stopped.values()} == {"stopped"}
    # graceful: exit 0, or uvicorn re-raising SIGTERM after its shutdown; never a SIGKILL
    codes = {r: c["last_exit_code"] for r, c in stopped.items()}
    assert all(code in (0, -signal.SIGTERM) for code in codes.values()), codes
    assert "Application shutdown complete" in output
    for role in ("server", "bridge", "learner"):
        assert (data / "logs" / f"{role}.log").stat().st_size > 0
