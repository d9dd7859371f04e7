"""`tandem up` as a user runs it: real server, sim bridge and learner processes."""

import signal
from pathlib import Path

import pytest

from tests.e2e.up_harness import TandemUp
from tests.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def test_up_runs_everything_and_stops_cleanly(tmp_path: Path):
    up = TandemUp(tmp_path / "data")
    up.start()
    try:
        up.wait_ready(90)
        running = wait_for(
            lambda: (
                {r for r, c in up.children().items() if c["status"] == "running"}
                == {"server", "bridge", "learner"}
            ),
            60,
            "every child to run",
        )
        assert running
        assert all(c["restarts"] == 0 for c in up.children().values())
        code = up.stop()
    finally:
        up.kill()
    assert code == 0
    output = "".join(up.lines)
    assert "login?token=" in output  # the one-time login link reaches the console
    assert "[server] " in output and "learner stopped" in output  # role-prefixed child logs
    stopped = up.children()
    assert {c["status"] for c in stopped.values()} == {"stopped"}
    # graceful: exit 0, or uvicorn re-raising SIGTERM after its shutdown; never a SIGKILL
    codes = {r: c["last_exit_code"] for r, c in stopped.items()}
    assert all(code in (0, -signal.SIGTERM) for code in codes.values()), codes
    assert "server stopped" in output and "learner stopped" in output
    for role in ("server", "bridge", "learner"):
        assert (up.data / "logs" / f"{role}.log").stat().st_size > 0
