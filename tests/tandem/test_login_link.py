"""``tandem login-link`` (a real subprocess) prints a one-time link that logs in to a running
server, once, without restarting it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from tandem.settings import load_settings
from tests.polling import free_port
from tests.web.harness import REPO, serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real app on a free loopback port, with its own data directory (no bridge)."""
    port = free_port()
    settings = load_settings(
        data_dir=tmp_path,
        server={"host": "127.0.0.1", "port": port, "bridges": [], "bridge_cmd_endpoints": []},
    )
    srv, thread = serve(create_app(settings, record=False), port)
    try:
        yield f"http://127.0.0.1:{port}", tmp_path
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


def login_link(data_dir: Path, port: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env |= {"TANDEM_DATA_DIR": str(data_dir), "TANDEM_SERVER__PORT": port}
    return subprocess.run(
        [sys.executable, "-m", "tandem", "login-link", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_login_link_logs_in_to_the_running_server_once(server: tuple[str, Path]) -> None:
    base, data_dir = server
    port = base.rsplit(":", 1)[1]
    result = login_link(data_dir, port)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith(f"http://127.0.0.1:{port}/login?token="), url
    assert "usable once" in result.stderr
    with httpx.Client(base_url=base, timeout=10) as browser:
        assert browser.get("/api/auth/me").status_code == 401
        res = browser.get(url, follow_redirects=False)
        assert res.status_code == 303, res.text
        me = browser.get("/api/auth/me")  # the cookie the link set
        assert me.status_code == 200 and me.json()["role"] == "operator"
        assert browser.get(url, follow_redirects=False).status_code == 401  # used up


def test_login_link_for_a_named_account_and_another_base_url(server: tuple[str, Path]) -> None:
    base, data_dir = server
    port = base.rsplit(":", 1)[1]
    result = login_link(data_dir, port, "--operator", "nobody")
    assert result.returncode == 1
    assert "no account named 'nobody'" in result.stderr
    result = login_link(
        data_dir, port, "--operator", "admin", "--base-url", "http://robot-pc:8000/"
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("http://robot-pc:8000/login?token=")
    token = url.split("token=", 1)[1]
    res = httpx.post(f"{base}/api/auth/exchange", json={"token": token}, timeout=10)
    assert res.status_code == 200 and res.json()["user"]["name"] == "admin"
