"""The scripted operator's pure parts and its command line's refusals."""

import os
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import uvicorn

from server.app import create_app
from tandem.cli.operator.hands import ExpertHands, HandsError, predict, task_of
from tandem.cli.operator.link import LinkError
from tandem.cli.operator.script import _state, _stuck
from tandem.settings import load_settings
from tests.e2e.up_harness import ROOT
from tests.polling import free_port


def test_only_sim_tasks_can_be_driven():
    assert task_of("sim:drawer") == "drawer"
    for spec in ("mock", "zmq://robot-pc:5570", "sim:"):
        with pytest.raises(HandsError, match="simulated tasks only"):
            task_of(spec)
    with pytest.raises(HandsError, match="unknown task 'stack'"):
        ExpertHands("sim:stack", 0.05, 0.2)


def test_prediction_moves_the_hand_and_a_held_object():
    state = np.zeros(21)
    state[3], state[7], state[14:17] = 1.0, 0.3, [0.5, 0.0, 0.05]  # identity quat, jaws closed
    lift = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    ahead = predict(state, lift, 0.05, 0.2)
    assert ahead[2] == pytest.approx(0.05) and ahead[16] == pytest.approx(0.10)
    state[7] = 1.0  # open jaws hold nothing: the object stays
    ahead = predict(state, lift, 0.05, 0.2)
    assert ahead[2] == pytest.approx(0.05) and ahead[16] == pytest.approx(0.05)
    yaw = predict(state, [0, 0, 0, 0, 0, 0.5, -1.0], 0.05, 0.2)
    assert yaw[3:7] == pytest.approx([np.cos(0.05), 0, 0, np.sin(0.05)])


def run_cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env["TANDEM_DATA_DIR"] = str(data)
    return subprocess.run(
        [sys.executable, "-m", "tandem", "demo-operator", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_refuses_bad_arguments_and_names_an_unreachable_server(tmp_path: Path):
    bad = run_cli("--demos", "-1", data=tmp_path)
    assert bad.returncode == 2 and "--demos: must be >= 0, got -1" in bad.stderr
    for flag, value, why in [
        ("--eval-episodes", "0", "must be >= 1, got 0"),
        ("--eval-episodes", "1001", "must be <= 1000, got 1001"),
        ("--eval-every", "-2", "must be >= 0, got -2"),
        ("--take-over-unsure", "-0.5", "must be a finite number >= 0, got -0.5"),
        ("--take-over-unsure", "nan", "must be a finite number >= 0, got nan"),
        ("--unsure-window", "0", "must be >= 1, got 0"),
    ]:
        bad = run_cli(flag, value, data=tmp_path)
        assert bad.returncode == 2 and f"{flag}: {why}" in bad.stderr, bad.stderr
    port = free_port()
    down = run_cli("--url", f"http://127.0.0.1:{port}", "--token", "t", data=tmp_path)
    assert down.returncode == 1
    assert f"cannot open ws://127.0.0.1:{port}/ws/telemetry" in down.stderr


def test_cli_says_why_the_server_refused_the_token(tmp_path: Path):
    """A real server with no robot: an unknown token is refused with the server's reason."""
    port = free_port()
    settings = load_settings(None, data_dir=tmp_path / "srv", server={"port": port})
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            if server.started:
                break
            threading.Event().wait(0.1)
        refused = run_cli("--url", url, "--token", "not-a-token", data=tmp_path)
    finally:
        server.should_exit = True
        thread.join(10)
    assert refused.returncode == 1
    assert "not logged in" in refused.stderr


def test_a_hand_that_neither_moves_nor_turns_is_stuck():
    still = np.array([0.4, 0.0, 0.1, 0.0, 1.0, 0.0, 0.0])
    jitter = np.array([0.001, 0, 0, 0, 0, 0, 0])
    poses = deque([still + (i % 2) * jitter for i in range(30)])
    assert _stuck(poses)
    turned = still.copy()
    turned[3:7] = [0.0, np.cos(0.05), np.sin(0.05), 0.0]  # 0.1 rad about the tool axis
    assert not _stuck(deque([*poses, turned]))
    assert not _stuck(deque([*poses, still + 10 * np.roll(jitter, 2)]))


def test_a_step_without_a_usable_state_is_a_clear_error():
    """Telemetry from a server that sends no step state (older, or broken) stops the operator
    with a message, not a traceback."""
    for bad in ({}, {"state": None}, {"state": [0.0] * 5}, {"state": [float("nan")] * 21}):
        with pytest.raises(LinkError, match="has no usable 'state'"):
            _state({"step": 3, "episode_id": "e", **bad})
    assert len(_state({"state": [0.0] * 21})) == 21
