"""Log files: private, free of tokens, one line per record (issue 17, defects 8 and 9)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tandem.logs import (
    LOG_CAPTURED_ENV,
    Throttle,
    held_note,
    quiet_connection_lines,
    redact_tokens,
    setup_logging,
)

SECRET = "s3cr3t-Tok_en"


@pytest.fixture
def root_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Puts pytest's handlers back after ``setup_logging``; a usual umask meanwhile."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    monkeypatch.delenv(LOG_CAPTURED_ENV, raising=False)
    old_umask = os.umask(0o022)
    yield
    os.umask(old_umask)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.handlers[:] = saved
    root.setLevel(level)


def test_redact_tokens() -> None:
    line = f'1.2.3.4:5 - "GET /login?token={SECRET}&next=/ HTTP/1.1" 303'
    assert redact_tokens(line) == '1.2.3.4:5 - "GET /login?token=<redacted>&next=/ HTTP/1.1" 303'
    assert redact_tokens(f"Authorization: Bearer {SECRET}") == "Authorization: Bearer <redacted>"
    assert redact_tokens("no secrets here") == "no secrets here"


def test_log_file_is_private_and_free_of_tokens(
    tmp_path: Path, root_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logs" / "server.log"
    setup_logging("server", "INFO", path)
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/ws?token={SECRET}", "1.1", 101)
    try:
        raise ValueError(f"bad link http://x/login?token={SECRET}")
    except ValueError:
        logging.getLogger("server.app").exception("failed")
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    err = capsys.readouterr().err
    assert SECRET not in text and SECRET not in err and "?token=<redacted>" in err
    assert 'GET /ws?token=<redacted> HTTP/1.1" 101' in text
    assert text.count("uvicorn.access") == 1


def test_an_existing_log_file_is_made_private(
    tmp_path: Path, root_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "server.log"
    path.write_text("old\n")
    path.chmod(0o644)
    setup_logging("server", "INFO", path)
    logging.getLogger("t").info("new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines()[0] == "old"


def test_a_supervised_process_leaves_its_log_file_to_the_supervisor(
    tmp_path: Path,
    root_restored: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LOG_CAPTURED_ENV, "1")
    setup_logging("server", "INFO", tmp_path / "server.log")
    logging.getLogger("t").info("once")
    assert not (tmp_path / "server.log").exists()
    assert capsys.readouterr().err.count("once") == 1


def test_uvicorns_own_logging_config_is_undone(
    tmp_path: Path, root_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone applied uvicorn's default config first (its own handlers, no propagation):
    access lines must still go through ours, once and redacted."""
    import logging.config

    import uvicorn.config

    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    logging.getLogger("uvicorn.access").setLevel(logging.ERROR)  # as Config(log_level="error")
    path = tmp_path / "server.log"
    setup_logging("server", "INFO", path)
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/x?token={SECRET}", "1.1", 200)
    text = path.read_text()
    assert 'GET /x?token=<redacted> HTTP/1.1" 200' in text and SECRET not in text
    assert SECRET not in capsys.readouterr().out + capsys.readouterr().err


def test_throttle_lets_one_line_per_key_and_period_through() -> None:
    now = [100.0]
    throttle = Throttle(period_s=5.0, clock=lambda: now[0])
    assert throttle("workspace") == 0  # the first line goes out
    assert [throttle("workspace") for _ in range(49)] == [None] * 49  # 10 Hz for 4.9 s
    assert throttle("watchdog") == 0  # another key is not held back
    now[0] += 5.0
    assert throttle("workspace") == 49  # the next line says how many were held back
    assert held_note(49, 5.0) == " (and 49 more in the last 5 s)" and held_note(0, 5.0) == ""


def test_connection_chatter_is_dropped_but_warnings_stay(
    tmp_path: Path, root_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The access log is off: a dashboard's WebSocket handshakes and uvicorn's lifecycle lines
    do not reach the console, the line that says where it runs and any warning do."""
    setup_logging("server", "INFO", tmp_path / "server.log")
    quiet_connection_lines()
    uv = logging.getLogger("uvicorn.error")
    uv.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/ws/telemetry")
    uv.info("connection open")
    uv.info("Waiting for application startup.")
    uv.info("Uvicorn running on %s", "http://127.0.0.1:8000")
    uv.warning('%s - "WebSocket %s" 403', "127.0.0.1:6", "/ws/control")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001")
    err = capsys.readouterr().err
    uv.filters.clear()  # the filter is process-wide; leave the logger as found
    assert "Uvicorn running on http://127.0.0.1:8000" in err
    assert '"WebSocket /ws/control" 403' in err
    for chatter in ("[accepted]", "connection open", "Waiting for", "Running upgrade"):
        assert chatter not in err, chatter
