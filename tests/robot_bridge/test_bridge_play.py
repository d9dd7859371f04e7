"""'Let the robot play': the Proto-RL explorer that ``tandem pretrain`` writes, acting through
the bridge (``policy = "play"``): on the sim inside the safety limits, refused on a robot reached
over ZeroMQ unless the operator enables it, and refused with a clear error when it cannot act."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq

from robot_bridge.app import ConfigError, play_policy
from robot_bridge.factory import make_backend
from tandem import security
from tandem.messages import Ping, StartRollout
from tests.learner.test_proto_pretrain import CONFIG
from tests.robot_bridge.conftest import (
    REPO,
    Collector,
    CommandClient,
    bridge_settings,
    endpoint,
    free_port,
    sim_available,
    spawn,
    stop_process,
    wait_hello,
)

pytestmark = [
    pytest.mark.timeout(180), pytest.mark.e2e, pytest.mark.slow,
    pytest.mark.skipif(not sim_available(), reason="no MuJoCo sim here"),
]  # fmt: skip
SIZE = 48
TINY = CONFIG + f"image_size = {SIZE}\n"  # tiny Proto-RL sizes, 48 px cameras
LOW, HIGH = [0.35, -0.05, 0.2], [0.45, 0.05, 0.3]  # a 10 cm box around the home pose
STEP_M = 0.05  # max_translation_m: per axis and step


def pretrain_explorer(root: Path) -> Path:
    """A tiny reward-free pre-training run on sim:lift (real ``tandem pretrain``): its explorer."""
    (root / "tiny.toml").write_text(TINY)
    res = subprocess.run(
        [sys.executable, "-m", "tandem", "pretrain", "--env", "sim:lift", "--steps", "40",
         "--out", str(root / "run"), "--config", str(root / "tiny.toml"), "--log-level", "WARNING"],
        cwd=REPO, capture_output=True, text=True, timeout=170, check=False,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "tandem bridge --policy play" in res.stdout
    return root / "run" / "explorer.safetensors"


@pytest.fixture(scope="module")
def explorer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pretrain_explorer(tmp_path_factory.mktemp("play"))


def start_rollout(
    pub: str, cmd: str, ctx: zmq.Context, policy: security.Policy | None = None
) -> tuple[Collector, CommandClient]:
    sub, client = Collector(pub, ctx, policy), CommandClient(cmd, ctx, policy)
    assert client.send(Ping(), timeout=30).ok
    sub.wait_for(sub.last_status, timeout=30)  # subscribed: no step is missed
    reply = client.send(StartRollout())
    assert reply.ok and reply.mode == "rollout", reply.reason
    return sub, client


def test_the_explorer_plays_on_the_sim_and_the_bridge_keeps_it_in_the_box(
    explorer: Path, ctx: zmq.Context, tmp_path: Path
) -> None:
    pub, cmd = endpoint(), endpoint()
    config = tmp_path / "tandem.toml"
    config.write_text(
        f'[bridge]\nrobot = "sim:lift"\nimage_size = {SIZE}\nrate_hz = 50.0\nhorizon = 30\n'
        f"workspace_low = {LOW}\nworkspace_high = {HIGH}\n"
    )
    proc = spawn(["bridge", "--config", str(config), "--pub", pub, "--cmd", cmd,
                  "--policy", "play", "--play-bundle", str(explorer)])  # fmt: skip
    sub = client = None
    try:
        sub, client = start_rollout(pub, cmd, ctx)
        end = sub.wait_for(lambda: sub.events("end"), timeout=60)[0]
        steps = [d.msg for d in sub.get("step") if d.msg.episode_id == end.episode_id]
        status = sub.wait_for(lambda: (s := sub.last_status()) and s.mode == "await_reset" and s)
    finally:
        for closable in (sub, client):
            if closable is not None:
                closable.close()
        out = stop_process(proc)
    assert "let the robot play: explorer" in out, out
    assert status.policy_ready and status.policy_kind == "play"
    assert len(steps) == 30 and end.reason == "time_limit"
    assert {s.action_source for s in steps} == {"policy"}
    assert {s.policy_info.proposal for s in steps} == {"rl"}  # the explorer, no IL proposal
    ee = np.array([s.state[:3] for s in steps])
    assert np.all(ee >= np.array(LOW) - 0.01) and np.all(ee <= np.array(HIGH) + 0.01), ee
    assert np.all(np.abs(np.diff(ee, axis=0)) <= STEP_M + 0.005)
    # The explorer pushed against the box (its proposals would have left it); the bridge held it.
    assert any(e.kind == "workspace" for e in status.safety_events), status.safety_events
    proposed = np.array([s.policy_action[:3] for s in steps])
    applied = np.array([s.action[:3] for s in steps])
    assert not np.allclose(proposed, applied)


def test_play_is_refused_on_a_robot_over_zeromq_unless_enabled(explorer: Path) -> None:
    settings = bridge_settings(robot=f"zmq://127.0.0.1:{free_port()}", policy="play",
                               play_bundle=str(explorer))  # fmt: skip
    backend = make_backend(settings.robot, settings)
    with pytest.raises(ConfigError, match="allow_play_on_real_arm = true"):
        play_policy(backend, settings)  # refused before the arm is ever asked anything
    proc = subprocess.run(
        [sys.executable, "-m", "tandem", "bridge", "--robot", settings.robot, "--policy", "play",
         "--play-bundle", str(explorer), "--pub", endpoint(), "--cmd", endpoint()],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "policy 'play' is refused on zmq://" in proc.stderr


def test_an_enabled_explorer_plays_through_an_arm_server(explorer: Path, ctx: zmq.Context) -> None:
    port = free_port()
    pub, cmd = endpoint(), endpoint()
    size = {"TANDEM_BRIDGE__IMAGE_SIZE": str(SIZE)}
    arm = spawn(["arm-server", "--driver", "sim:lift", "--bind", f"tcp://127.0.0.1:{port}"], **size)
    bridge = sub = client = None
    try:
        wait_hello(f"tcp://127.0.0.1:{port}", ctx).close()
        bridge = spawn([
            "bridge", "--robot", f"zmq://127.0.0.1:{port}", "--pub", pub, "--cmd", cmd,
            "--policy", "play", "--play-bundle", str(explorer), "--allow-play-on-real-arm",
            "--rate", "20",
        ], **size)  # fmt: skip
        sub, client = start_rollout(pub, cmd, ctx)
        steps = sub.wait_for(lambda: len(sub.get("step")) >= 5 and sub.get("step"), timeout=60)
        assert {d.msg.policy_info.proposal for d in steps} == {"rl"}
        assert {d.msg.action_source for d in steps} == {"policy"}
    finally:
        for closable in (sub, client):
            if closable is not None:
                closable.close()
        if bridge is not None:
            sys.stderr.write(stop_process(bridge))
        stop_process(arm)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"image_size": 64}, "camera 'front' is 64x64, the bundle was trained on 48x48"),
        ({"cameras": ["front"]}, "it needs camera 'wrist' (the robot has: front)"),
        ({"robot": "mock"}, "state entries, the robot has"),
        ({"play_bundle": "/nonexistent/explorer.safetensors"}, "no such file"),
    ],
)
def test_an_explorer_that_cannot_act_here_is_a_clear_error(
    explorer: Path, over: dict[str, object], message: str
) -> None:
    settings = bridge_settings(**{"robot": "sim:lift", "policy": "play", "image_size": SIZE,
                                  "play_bundle": str(explorer), **over})  # fmt: skip
    backend = make_backend(settings.robot, settings)
    with pytest.raises(ValueError, match=r"^play_bundle ") as err:
        play_policy(backend, settings)
    assert message in str(err.value)


def test_a_file_that_is_not_a_bundle_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "explorer.safetensors"
    junk.write_bytes(b"not a bundle")
    settings = bridge_settings(robot="mock", policy="play", play_bundle=str(junk))
    with pytest.raises(ValueError, match="not a policy bundle"):
        play_policy(make_backend("mock", settings), settings)


def test_policy_play_without_a_bundle_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="policy = 'play' needs play_bundle"):
        bridge_settings(policy="play")
