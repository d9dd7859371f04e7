"""Helpers shared by the app tests (imported by name; fixtures live in conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from server.fake_bridge import FakeBridge
from tandem.settings import Settings, load_settings

PASSWORD = "correct horse battery"


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def make_settings(
    tmp_path: Path, bridges: list[FakeBridge], metrics_endpoint: str = "", **server: Any
) -> Settings:
    web = tmp_path / "web"
    web.mkdir(exist_ok=True)
    (web / "index.html").write_text("<!doctype html><title>Tandem</title>")
    return load_settings(
        data_dir=tmp_path / "data",
        server={
            "bridges": [b.pub_endpoint for b in bridges],
            "bridge_cmd_endpoints": [b.cmd_endpoint for b in bridges],
            "learner_metrics_endpoint": metrics_endpoint,
            "web_dir": str(web),
            "command_timeout_s": 1.0,
            "metrics_batch_s": 0.2,
            **server,
        },
        teleop={"lease_timeout_s": 5.0},
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class LiveServer:
    """The app under real uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 10.0, "uvicorn to start")
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        self.base = f"127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10.0)
