"""`tandem up` as a user runs it: real server, sim bridge and learner processes."""

import signal
from pathlib import Path

import pytest
import zmq

from tests.e2e.up_harness import TandemUp
from tests.polling import wait_for
from tests.robot_bridge.test_bridge_play import pretrain_explorer, start_rollout

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


def test_up_play_lets_the_robot_play_with_the_cameras_of_its_explorer(tmp_path: Path):
    """``tandem up --play``: the bridge acts with the explorer of a real ``tandem pretrain`` run,
    its cameras rendered at the explorer's 48 px without any setting from the user."""
    explorer = pretrain_explorer(tmp_path)
    up = TandemUp(tmp_path / "data")
    up.start("--play", str(explorer), "--no-learner")
    ctx = zmq.Context()
    try:
        wait_for(lambda: up.logged("let the robot play: explorer"), 90, "the explorer loaded")
        sub, client = start_rollout(up.tcp["pub"], up.tcp["cmd"], ctx, up.policy)
        try:
            steps = sub.wait_for(lambda: len(sub.get("step")) >= 5 and sub.get("step"), 60)
            status = sub.last_status()
        finally:
            sub.close()
            client.close()
        code = up.stop()
    finally:
        up.kill()
        ctx.destroy(linger=0)
    assert code == 0
    assert status.policy_ready and status.policy_kind == "play"
    assert {d.msg.policy_info.proposal for d in steps} == {"rl"}
    assert {name: image.shape for name, image in steps[0].images().items()} == {
        "front": (48, 48, 3), "wrist": (48, 48, 3)}  # fmt: skip
