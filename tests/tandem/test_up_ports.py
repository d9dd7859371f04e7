"""``tandem up`` with a port already taken: a clear message naming the port and its holder,
within seconds, and no login link (a real subprocess, a real listening socket)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tandem import ports
from tests.learner.helpers import REPO

pytestmark = pytest.mark.timeout(60)


def _listen() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_up_exits_at_once_naming_the_port_and_its_holder(tmp_path: Path) -> None:
    with _listen() as held:
        port = held.getsockname()[1]
        env = {**os.environ, "TANDEM_SERVER__PORT": str(port), "TANDEM_SERVER__HOST": "127.0.0.1",
               "TANDEM_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
        t0 = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "tandem", "up"],
            cwd=REPO, capture_output=True, text=True, timeout=30, env=env, check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - t0
    out = done.stdout + done.stderr
    assert done.returncode == 3, out
    assert f"port {port} (server HTTP) is in use by pid {os.getpid()}" in out
    assert "pytest" in out or "python" in out  # the holder's command line
    assert "login" not in out.lower() and not (tmp_path / "data" / "processes.json").exists()
    assert elapsed < 5, f"took {elapsed:.1f} s"


def test_busy_lists_only_taken_ports() -> None:
    with _listen() as held:
        taken = held.getsockname()[1]
        with _listen() as probe:  # a port that was free a moment ago
            free = probe.getsockname()[1]
        checks = [ports.Port("127.0.0.1", taken, "a"), ports.Port("127.0.0.1", free, "b")]
        [only] = ports.busy(checks)
    assert only.port.port == taken and str(os.getpid()) in only.holder
    assert ports.from_endpoint("tcp://*:5555", "x") == ports.Port("0.0.0.0", 5555, "x")
    assert ports.from_endpoint("ipc:///tmp/x", "x") is None
