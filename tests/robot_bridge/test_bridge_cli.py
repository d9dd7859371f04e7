"""The real CLI processes: ``tandem bridge`` on the sim and through an arm-server, bad arguments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import zmq

from tandem.messages import Ping, StartRollout
from tests.robot_bridge.conftest import (
    REPO,
    Collector,
    CommandClient,
    endpoint,
    free_port,
    sim_available,
    spawn,
    stop_process,
    wait_hello,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.e2e, pytest.mark.slow]
needs_sim = pytest.mark.skipif(not sim_available(), reason="no MuJoCo sim here")


def rollout_until_success(pub: str, cmd: str, ctx: zmq.Context) -> None:
    sub, client = Collector(pub, ctx), CommandClient(cmd, ctx)
    try:
        assert client.send(Ping(), timeout=30).ok
        sub.wait_for(sub.last_status)  # the subscription is live: no step will be missed
        reply = client.send(StartRollout())
        assert reply.ok and reply.mode == "rollout", reply.reason
        end = sub.wait_for(lambda: sub.events("end"), timeout=60)[0]
        assert end.reason == "success" and end.terminated, end
        steps = [d for d in sub.get("step") if d.msg.episode_id == end.episode_id]
        assert len(steps) == end.num_steps and steps[-1].msg.success
        assert set(steps[0].images()) == {"front", "wrist"}
        status = sub.wait_for(lambda: (s := sub.last_status()) and s.mode == "await_reset" and s)
        assert status.policy_ready and status.timing.ticks > 0
    finally:
        sub.close()
        client.close()


@needs_sim
def test_bridge_on_sim_with_expert_and_config_file(tmp_path: Path, ctx) -> None:
    pub, cmd = endpoint(), endpoint()
    config = tmp_path / "tandem.toml"
    config.write_text(f'[bridge]\nrobot = "sim:lift"\nrate_hz = 20.0\npub_endpoint = "{pub}"\n')
    args = ["bridge", "--config", str(config), "--cmd", cmd, "--policy", "expert", "--realtime"]
    proc = spawn(args)
    try:
        rollout_until_success(pub, cmd, ctx)
    finally:
        out = stop_process(proc)
    assert "sim:lift" in out and proc.returncode == 0, out
    # SCHED_FIFO granted, or refused with a warning and the loop ran anyway
    assert "SCHED_FIFO priority 10" in out, out


@needs_sim
def test_bridge_through_arm_server_with_sim_driver(ctx) -> None:
    port = free_port()
    pub, cmd = endpoint(), endpoint()
    arm = spawn(["arm-server", "--driver", "sim:drawer", "--bind", f"tcp://127.0.0.1:{port}"])
    bridge = None
    try:
        wait_hello(f"tcp://127.0.0.1:{port}", ctx).close()  # the bridge needs it up to start
        bridge = spawn([
            "bridge", "--robot", f"zmq://127.0.0.1:{port}", "--pub", pub, "--cmd", cmd,
            "--policy", "expert", "--rate", "20",
        ])  # fmt: skip
        rollout_until_success(pub, cmd, ctx)
    finally:
        if bridge is not None:
            sys.stderr.write(stop_process(bridge))  # shown by pytest on failure
        stop_process(arm)


def test_a_bridge_waiting_for_learner_weights_stops_cleanly(ctx) -> None:
    """SIGTERM: the weights threads stop before the sockets go (no traceback, exit 0)."""
    args = ["bridge", "--robot", "mock", "--policy", "learner", "--pub", endpoint(),
            "--cmd", endpoint()]  # fmt: skip
    proc = spawn(args, TANDEM_BRIDGE__WEIGHTS_ENDPOINT=endpoint())
    sub = Collector(args[6], ctx)
    try:
        sub.wait_for(sub.last_status, timeout=20)  # running, its weights threads waiting
    finally:
        sub.close()
        out = stop_process(proc)
    assert proc.returncode == 0 and "Traceback" not in out, out


def test_bad_robot_is_a_clear_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tandem", "bridge", "--robot", "bogus"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 3
    assert "unknown robot 'bogus'" in proc.stderr


def test_bad_setting_is_a_config_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tandem", "bridge", "--rate", "-5"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "rate_hz" in proc.stderr
