"""One logging set-up for every process: level from settings, role in every line.

No secret reaches a log: every handler installed here rewrites ``token=<value>``
(query strings, one-time login links, access-log lines) and ``Bearer <value>``
to ``<redacted>``, and log files are created readable by their owner only.
A process started by ``tandem up`` writes no log file of its own: the
supervisor already copies its output into ``<role>.log`` (``LOG_CAPTURED_ENV``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Hashable
from io import TextIOWrapper
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s [{role}] %(name)s: %(message)s"
LOG_FILE_MODE = 0o600
LOG_CAPTURED_ENV = "TANDEM_LOG_CAPTURED"  # set by the supervisor for its children
REDACTED = "<redacted>"
_SECRET = re.compile(r"(?i)(token=|bearer\s+)[^\s&\"'#;,]+")


def redact_tokens(text: str) -> str:
    """``text`` with every ``token=...`` value and bearer token replaced by ``<redacted>``."""
    return _SECRET.sub(lambda m: m.group(1) + REDACTED, text)


class Throttle:
    """At most one log line per key and ``period_s``: ``__call__`` returns None to skip a
    line, else how many lines of that key were held back since the last one (0 at first).
    For conditions that repeat every tick (a workspace limit, refused input)."""

    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.period_s, self.clock = period_s, clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def __call__(self, key: Hashable) -> int | None:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


def held_note(held: int, period_s: float) -> str:
    """`` (and N more in the last P s)`` after a throttled line, or nothing."""
    return f" (and {held} more in the last {period_s:g} s)" if held else ""


class RedactTokens(logging.Filter):
    """A handler filter that removes tokens from the formatted message and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_tokens(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_tokens(record.exc_text)
        return True


def open_private(path: str | Path) -> int:
    """Open ``path`` for appending, created (with its folder) readable by the owner only; an fd."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
    os.fchmod(fd, LOG_FILE_MODE)  # an older file may have been world-readable
    return fd


class _PrivateFileHandler(logging.FileHandler):
    """A ``FileHandler`` whose file is created (or made) 0600."""

    def _open(self) -> TextIOWrapper:
        fd = open_private(self.baseFilename)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (test runners and daemons replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        # Assign, not setStream(): that flushes the old stream, which may be closed,
        # and the error would escape into whatever code was logging.
        self.stream = sys.stderr
        super().emit(record)


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Libraries whose INFO lines say nothing an operator needs (schema migration steps, a
# missing optional OpenGL speed-up): warnings only.
QUIET_LIBRARIES = ("alembic", "OpenGL")
# uvicorn's lifecycle and per-connection lines (a WebSocket accepted, opened, closed):
# requests in all but name, so they follow the access-log setting.
_WEBSOCKET_LINE = '%s - "WebSocket %s"'
_UVICORN_CHATTER = frozenset({
    "connection open", "connection closed", "Started server process [%d]",
    "Waiting for application startup.", "Waiting for application shutdown.",
    "Application shutdown complete.", "Finished server process [%d]",
})  # fmt: skip


class _NoChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not isinstance(record.msg, str):
            return True
        chatter = record.msg in _UVICORN_CHATTER or record.msg.startswith(_WEBSOCKET_LINE)
        return not chatter


def quiet_connection_lines() -> None:
    """Drop uvicorn's per-connection and lifecycle INFO lines (the access log is off)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoChatter) for f in logger.filters):
        logger.addFilter(_NoChatter())


def _route_to_root(names: tuple[str, ...]) -> None:
    """Send these loggers' lines through the root's handlers (redacted, one file), undoing
    what a library's own logging config may have set: its handlers, no propagation, off,
    its own level (uvicorn's ``log_level`` sets one)."""
    for name in names:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate, logger.disabled = True, False
        logger.setLevel(logging.NOTSET)  # the root's level decides, as for every logger


def setup_logging(role: str, level: str = "INFO", log_file: str | Path | None = None) -> None:
    """Configure the root logger for a process playing ``role`` (bridge, learner, ...).

    Lines go to stderr and, when ``log_file`` is given and no supervisor
    captures this process's output already, to that file as well (mode 0600).
    Calling it again replaces the previous configuration.
    """
    formatter = logging.Formatter(FORMAT.format(role=role))
    handlers: list[logging.Handler] = [_StderrHandler(sys.stderr)]
    if log_file is not None and not os.environ.get(LOG_CAPTURED_ENV):
        handlers.append(_PrivateFileHandler(log_file))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactTokens())
        root.addHandler(handler)
    root.setLevel(level)
    _route_to_root(UVICORN_LOGGERS)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
