"""Browser-test harness: the bridge + server stack, Chromium, page-error collection.

Fixtures using these live in ``conftest.py``; see its docstring for the set-up.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage

from tandem.messages import ClearEStop, CommandBody, EStop
from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "web" / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BRIDGE_START_S = 60.0


@dataclass
class Stack:
    """The running bridge + server of a browser-test session."""

    base_url: str
    token: str
    app: Any
    loop: asyncio.AbstractEventLoop
    bridge: subprocess.Popen[bytes]
    metrics_endpoint: str
    data_dir: Path
    bridge_log: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )

    @property
    def state(self) -> Any:
        """The app's AppState (store, link, leases)."""
        return self.app.state.tandem

    def status(self) -> dict[str, Any] | None:
        """The robot's latest BridgeStatus as the server reports it (None before the first)."""
        robots = self.http.get("/api/robots").raise_for_status().json()
        return robots[0]["status"] if robots else None

    def wait_status(
        self, check: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        seen: list[dict[str, Any] | None] = [None]

        def probe() -> dict[str, Any] | None:
            status = seen[0] = self.status()
            return status if status is not None and check(status) else None

        try:
            return wait_for(probe, timeout, what)  # type: ignore[no-any-return]
        except pytest.fail.Exception:
            last = seen[0] or {}
            keys = ("mode", "episode_id", "step", "ee_pos", "last_transition")
            pytest.fail(
                f"{what}: not reached in {timeout:.1f} s; last status: "
                f"{ {k: last.get(k) for k in keys} }"
            )

    def wait_steps(self, n: int, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the bridge has published ``n`` more control ticks of this episode."""
        start = self.status() or {}
        return self.wait_status(
            lambda s: (
                s.get("step", 0) >= start.get("step", 0) + n
                or s.get("episode_id") != start.get("episode_id")
            ),
            timeout,
            f"{n} more control steps",
        )

    def command(self, body: CommandBody) -> Any:
        """Send a bridge command through the server's link (on the server's event loop)."""
        future = asyncio.run_coroutine_threadsafe(self.state.link.command(body), self.loop)
        return future.result(timeout=10)

    def to_idle(self) -> None:
        """Bring the robot to ``idle`` whatever it was doing (e-stop, then clear it)."""
        status = self.wait_status(lambda s: True, 30, "a bridge status")
        if status["mode"] == "idle":
            return
        self.command(EStop(operator="tests", reason="reset between browser tests"))
        self.wait_status(lambda s: s["mode"] == "estop", 10, "mode estop")
        reply = self.command(ClearEStop(operator="tests", reason="reset between browser tests"))
        assert reply.ok, reply.reason
        self.wait_status(lambda s: s["mode"] == "idle", 10, "mode idle")


def start_bridge(
    pub: str, cmd: str, data_dir: Path, log_path: Path, horizon: int = 2000
) -> subprocess.Popen[bytes]:
    """The sim bridge; by default episodes end by the tests' labels, not by time (``horizon``)."""
    env = {
        **os.environ,
        "TANDEM_DATA_DIR": str(data_dir),
        "TANDEM_BRIDGE__HORIZON": str(horizon),
        "TANDEM_BRIDGE__SEED": "0",
    }
    args = [sys.executable, "-m", "tandem", "bridge", "--robot", "sim:lift", "--policy", "expert"]
    args += ["--pub", pub, "--cmd", cmd, "--rate", "10"]
    with log_path.open("wb") as log:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


class _Server(uvicorn.Server):
    """uvicorn's server, remembering its event loop (to run the link's coroutines on it)."""

    loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)


def serve(app: Any, port: int) -> tuple[_Server, threading.Thread]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the server to start")
    return server, thread


def session_token(base_url: str, login_url: str) -> str:
    one_time = parse_qs(urlparse(login_url).query)["token"][0]
    res = httpx.post(f"{base_url}/api/auth/exchange", json={"token": one_time}, timeout=10)
    res.raise_for_status()
    return str(res.json()["token"])


def chromium_executable() -> str:
    """Debian's Chromium: ``$CHROMIUM`` or /usr/bin/chromium; fails (never skips) if absent."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"Chromium not found at {path!r}: the browser tests need Debian's chromium package "
            "(`apt-get install -y chromium`, done by scripts/system-deps.sh) or $CHROMIUM "
            "pointing at a Chromium binary"
        )
    return path


@dataclass
class PageErrors:
    """Page errors and console errors of one test's page."""

    messages: list[str] = field(default_factory=list)

    def console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.messages.append(f"console error: {msg.text} ({msg.location.get('url', '')})")

    def page_error(self, exc: Exception) -> None:
        self.messages.append(f"page error: {exc}")


def new_context(browser: Browser, stack: Stack, **kwargs: Any) -> BrowserContext:
    kwargs.setdefault("viewport", {"width": 1280, "height": 900})
    context = browser.new_context(base_url=stack.base_url, **kwargs)
    context.add_cookies([{"name": "tandem_token", "value": stack.token, "url": stack.base_url}])
    return context


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
