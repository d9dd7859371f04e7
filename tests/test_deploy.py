"""docker-compose.yml and the health probe (Docker itself is not available in CI)."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
import zmq

from tandem import security
from tandem.cli.main import build_parser
from tandem.health import wait_for_message
from tandem.settings import load_settings
from tests.polling import free_port

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TANDEM_SERVICES = ["server", "bridge", "learner"]


def resolved(service: str, monkeypatch: pytest.MonkeyPatch):
    """The settings a service's container resolves from its environment."""
    for name in list(os.environ):
        if name.startswith("TANDEM_"):
            monkeypatch.delenv(name)
    for key, value in SERVICES[service]["environment"].items():
        monkeypatch.setenv(key, str(value))
    return load_settings()


def host_port(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    assert parts.hostname is not None and parts.port is not None, endpoint
    return parts.hostname, parts.port


def test_compose_names_the_services_with_health_checks_and_data():
    assert set(SERVICES) == {"postgres", "keys", *TANDEM_SERVICES}
    for name, service in SERVICES.items():
        assert name == "keys" or service["healthcheck"]["test"], name
    for name in TANDEM_SERVICES:
        assert "tandem-data:/data" in SERVICES[name]["volumes"], name
    gpu = SERVICES["learner"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert SERVICES["server"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_service_waits_for_the_keys_in_the_shared_volume():
    """The one-shot ``keys`` service writes the CurveZMQ keys into the data volume the
    others read them from, before any of them binds or connects (docs/security.md)."""
    keys = SERVICES["keys"]
    assert keys["command"] == ["tandem", "keys", "--if-missing"] and keys["restart"] == "no"
    assert "tandem-data:/data" in keys["volumes"]
    for name in TANDEM_SERVICES:
        assert SERVICES[name]["depends_on"]["keys"] == {
            "condition": "service_completed_successfully"
        }, name


@pytest.mark.parametrize("name", [*TANDEM_SERVICES, "keys"])
def test_each_command_is_a_valid_tandem_command(name, monkeypatch):
    command = [
        part.replace("${TANDEM_ROBOT:-sim:lift}", "sim:lift") for part in SERVICES[name]["command"]
    ]
    assert command[0] == "tandem"
    args = build_parser().parse_args(command[1:])
    assert args.command == name
    resolved(name, monkeypatch)  # the environment is valid for the settings tree


def test_endpoints_are_wired_between_the_services(monkeypatch):
    server = resolved("server", monkeypatch).server
    bridge = resolved("bridge", monkeypatch).bridge
    learner = resolved("learner", monkeypatch).learner
    pub_port, cmd_port = host_port(bridge.pub_endpoint)[1], host_port(bridge.cmd_endpoint)[1]
    assert [host_port(e) for e in server.bridges] == [("bridge", pub_port)]
    assert [host_port(e) for e in learner.bridges] == [("bridge", pub_port)]
    assert [host_port(e) for e in server.bridge_cmd_endpoints] == [("bridge", cmd_port)]
    assert host_port(bridge.weights_endpoint) == ("learner", host_port(learner.weights_endpoint)[1])
    assert host_port(server.learner_metrics_endpoint) == (
        "learner",
        host_port(learner.metrics_endpoint)[1],
    )
    assert server.database_url is not None and "@postgres:5432/" in server.database_url
    assert server.host == "0.0.0.0"


def test_health_probe_sees_a_real_bridge_and_fails_without_one(tmp_path):
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.SUB) as s:
        port = s.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    assert not wait_for_message("status", endpoint, 0.5)
    env = {
        **os.environ,
        "TANDEM_DATA_DIR": str(tmp_path),
        "TANDEM_BRIDGE__PUB_ENDPOINT": endpoint,
        "TANDEM_BRIDGE__CMD_ENDPOINT": f"tcp://127.0.0.1:{port + 1}",
    }
    bridge = subprocess.Popen(
        [sys.executable, "-m", "tandem", "bridge", "--robot", "mock"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        probe = [sys.executable, "-m", "tandem.health", "status", endpoint, "--timeout", "20"]
        assert subprocess.run(probe, cwd=ROOT, check=False, timeout=60).returncode == 0
    finally:
        bridge.terminate()
        bridge.wait(20)


def test_health_probe_uses_the_keys_of_its_data_dir(tmp_path):
    """As in the compose file: the bridge and its probe find the keys in TANDEM_DATA_DIR;
    a probe without them sees nothing."""
    security.generate(tmp_path / "keys")
    endpoint, cmd = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")},
        "TANDEM_DATA_DIR": str(tmp_path),
        "TANDEM_BRIDGE__PUB_ENDPOINT": endpoint,
        "TANDEM_BRIDGE__CMD_ENDPOINT": cmd,
    }
    bridge = subprocess.Popen(
        [sys.executable, "-m", "tandem", "bridge", "--robot", "mock"],
        cwd=ROOT, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        probe = [sys.executable, "-m", "tandem.health", "status", endpoint, "--timeout", "20"]
        assert subprocess.run(probe, cwd=ROOT, env=env, check=False, timeout=60).returncode == 0
        with security.using(security.Policy()):
            assert not wait_for_message("status", endpoint, 2.0)
    finally:
        bridge.terminate()
        bridge.wait(20)


def test_health_probe_ignores_malformed_messages():
    ctx = zmq.Context.instance()
    with ctx.socket(zmq.PUB) as pub:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        stop = threading.Event()

        def publish() -> None:
            while not stop.is_set():
                pub.send_multipart([b"status", b"{broken"])
                time.sleep(0.05)

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        try:
            assert not wait_for_message("status", f"tcp://127.0.0.1:{port}", 1.0)
        finally:
            stop.set()
            thread.join(5)
