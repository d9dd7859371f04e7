"""`tandem server`'s uvicorn on a real socket: access lines reach server.log, tokens redacted."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from app_helpers import wait_until

from server.app import create_app
from tandem.cli.commands.server import uvicorn_options
from tandem.logs import LOG_CAPTURED_ENV, setup_logging
from tandem.settings import Settings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``setup_logging`` as `tandem server` calls it; pytest's handlers come back afterwards."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    monkeypatch.delenv(LOG_CAPTURED_ENV, raising=False)
    old_umask = os.umask(0o022)
    path = tmp_path / "logs" / "server.log"
    setup_logging("server", "INFO", path)
    yield path
    os.umask(old_umask)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.handlers[:] = saved
    root.setLevel(level)


def _serve_and_get(settings: Settings) -> tuple[str, int]:
    """Serve on a free port, follow the one-time link, ask with a bad token; (token, port)."""
    shown: list[str] = []
    app = create_app(settings, record=False, on_login_url=shown.append)
    options = {**uvicorn_options(settings), "host": "127.0.0.1", "port": 0}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10.0, "uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        one_time = shown[0].rsplit("token=", 1)[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get(f"/login?token={one_time}").status_code == 303
            http.cookies.clear()
            assert http.get("/api/auth/me?token=not-a-real-token").status_code == 401
    finally:
        server.should_exit = True
        thread.join(10.0)
    return one_time, port


def test_access_log_lines_are_written_once_without_tokens(
    settings: Settings, server_log: Path
) -> None:
    on = settings.model_copy(
        update={"server": settings.server.model_copy(update={"access_log": True})}
    )
    one_time, _ = _serve_and_get(on)
    text = server_log.read_text()
    assert one_time not in text and "not-a-real-token" not in text
    assert text.count('"GET /login?token=<redacted> HTTP/1.1" 303') == 1, text
    assert text.count("one-time login link issued") == 1
    assert stat.S_IMODE(server_log.stat().st_mode) == 0o600


def test_the_access_log_is_off_by_default(settings: Settings, server_log: Path) -> None:
    assert not settings.server.access_log
    _serve_and_get(settings)
    text = server_log.read_text()
    assert "GET /login" not in text and "GET /api/auth/me" not in text
    assert text.count("one-time login link issued") == 1  # what matters is still there
