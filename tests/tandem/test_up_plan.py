import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tandem.cli.commands.up import plan, play_setup, shift_port
from tandem.settings import load_settings


def test_shift_port_moves_tcp_ports_only():
    assert shift_port("tcp://127.0.0.1:5555", 10) == "tcp://127.0.0.1:5565"
    assert shift_port("ipc:///tmp/bridge", 10) == "ipc:///tmp/bridge"


def test_one_robot_gets_the_configured_endpoints_and_id():
    settings = load_settings()
    specs = plan(settings, ["sim:lift"])
    assert [s.role for s in specs] == ["server", "bridge", "learner"]
    # the bridge stops first, so the recorder and the learner get its last messages
    assert [s.stop_group for s in specs] == [1, 0, 1]
    bridge = specs[1]
    assert bridge.argv[-5:] == ["bridge", "--robot", "sim:lift", "--policy", "learner"]
    assert specs[2].argv[-2:] == ["learner", "--resume"]
    assert plan(settings, ["sim:lift"], learner=False)[1].argv[-1] == "expert"
    assert bridge.env["TANDEM_BRIDGE__PUB_ENDPOINT"] == settings.bridge.pub_endpoint
    assert bridge.env["TANDEM_BRIDGE__ROBOT_ID"] == settings.bridge.robot_id


def test_several_robots_get_distinct_ports_and_everyone_knows_them(tmp_path):
    settings = load_settings()
    specs = plan(settings, ["sim:lift", "sim:drawer"], config_file=str(tmp_path / "c.toml"))
    bridges = [s for s in specs if s.role.startswith("bridge")]
    pubs = [b.env["TANDEM_BRIDGE__PUB_ENDPOINT"] for b in bridges]
    cmds = [b.env["TANDEM_BRIDGE__CMD_ENDPOINT"] for b in bridges]
    assert len(set(pubs + cmds)) == 4
    assert len({b.env["TANDEM_BRIDGE__ROBOT_ID"] for b in bridges}) == 2
    server, learner = specs[0], specs[-1]
    assert json.loads(server.env["TANDEM_SERVER__BRIDGES"]) == pubs
    assert json.loads(server.env["TANDEM_SERVER__BRIDGE_CMD_ENDPOINTS"]) == cmds
    assert json.loads(learner.env["TANDEM_LEARNER__BRIDGES"]) == pubs
    # the learner reads the recorder's store instead of writing every step again
    store = learner.env["TANDEM_LEARNER_SERVICE__RECORDER_STORE"]
    assert store == str(Path(settings.data_dir) / "episodes")
    assert all(s.env["TANDEM_CONFIG"] == str(tmp_path / "c.toml") for s in specs)


def test_children_resolve_the_settings_they_are_given(monkeypatch):
    settings = load_settings()
    [_, bridge, _] = plan(settings, ["sim:drawer"])
    for key, value in bridge.env.items():
        monkeypatch.setenv(key, value)
    resolved = load_settings()
    assert resolved.bridge.robot == "sim:drawer"
    assert resolved.bridge.pub_endpoint == bridge.env["TANDEM_BRIDGE__PUB_ENDPOINT"]


def test_server_and_learner_parse_the_bridge_lists(monkeypatch):
    specs = plan(load_settings(), ["sim:lift", "mock"])
    for key, value in {**specs[0].env, **specs[-1].env}.items():
        monkeypatch.setenv(key, value)
    resolved = load_settings()
    assert len(resolved.server.bridges) == 2
    assert resolved.learner.bridges == resolved.server.bridges


def test_weights_and_metrics_endpoints_come_from_the_learner_settings(monkeypatch):
    monkeypatch.setenv("TANDEM_LEARNER__WEIGHTS_ENDPOINT", "tcp://127.0.0.1:7001")
    monkeypatch.setenv("TANDEM_LEARNER__METRICS_ENDPOINT", "tcp://127.0.0.1:7002")
    server, bridge, _ = plan(load_settings(), ["sim:lift"])
    assert bridge.env["TANDEM_BRIDGE__WEIGHTS_ENDPOINT"] == "tcp://127.0.0.1:7001"
    assert server.env["TANDEM_SERVER__LEARNER_METRICS_ENDPOINT"] == "tcp://127.0.0.1:7002"


def pixel_bundle(path: Path) -> Path:
    """A policy bundle that reads two 48 px cameras (what ``tandem pretrain`` writes)."""
    from learner.bc import BCPolicy
    from learner.bundle import make_bundle
    from learner.obs import ObsSpec
    from tandem.settings.learner import LearnerSettings

    spec = ObsSpec(state_dim=21, action_dim=7, cameras=("front", "wrist"),
                   image_shape=(48, 48, 3), raw_state_dim=21)  # fmt: skip
    il = BCPolicy(spec, hidden=8, layers=1, dropout=0.0, resnet_width=4)
    blob, _ = make_bundle(LearnerSettings(method="bc"), spec, agent=None, il=il)
    path.write_bytes(blob)
    return path


def test_play_puts_the_explorer_and_its_cameras_in_every_bridge(tmp_path):
    settings = load_settings()
    explorer = str(pixel_bundle(tmp_path / "explorer.safetensors").resolve())
    specs = plan(settings, ["sim:lift", "mock"], play=play_setup(settings, ["sim:lift"], explorer))
    for bridge in (s for s in specs if s.role.startswith("bridge")):
        assert bridge.argv[-4:] == ["--policy", "play", "--play-bundle", explorer]
        assert bridge.env["TANDEM_BRIDGE__IMAGE_SIZE"] == "48"
        assert json.loads(bridge.env["TANDEM_BRIDGE__CAMERAS"]) == ["front", "wrist"]
    assert specs[-1].role == "learner"  # it still records what the explorer does
    assert "TANDEM_BRIDGE__IMAGE_SIZE" not in specs[0].env  # the server is not told


def test_play_is_refused_before_anything_starts(tmp_path):
    settings = load_settings()
    missing = str(tmp_path / "explorer.safetensors")
    with pytest.raises(ValueError, match="no such file"):
        play_setup(settings, ["sim:lift"], missing)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"junk\.safetensors: not a policy bundle"):
        play_setup(settings, ["sim:lift"], str(junk))
    explorer = str(pixel_bundle(tmp_path / "explorer.safetensors"))
    with pytest.raises(ValueError) as refused:
        play_setup(settings, ["sim:lift", "zmq://10.0.0.5:5557"], explorer)
    assert str(refused.value) == (
        "--play is refused on zmq://10.0.0.5:5557: set bridge.allow_play_on_real_arm = true to "
        "let the explorer drive a real arm"
    )
    allowed = load_settings(bridge={"allow_play_on_real_arm": True})
    assert play_setup(allowed, ["zmq://10.0.0.5:5557"], explorer).bundle == explorer


def test_tandem_up_play_on_a_real_arm_exits_with_the_reason(tmp_path):
    explorer = tmp_path / "explorer.safetensors"
    explorer.write_bytes(b"x")
    res = subprocess.run(
        [sys.executable, "-m", "tandem", "up", "--robot", "zmq://127.0.0.1:1", "--play",
         str(explorer)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "TANDEM_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "--play is refused on zmq://127.0.0.1:1" in res.stderr + res.stdout
    assert not (tmp_path / "data" / "processes.json").exists()  # nothing was started
