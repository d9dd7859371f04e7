"""One logging set-up for every process: level from settings, role in every line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s [{role}] %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (test runners and daemons replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        # Assign, not setStream(): that flushes the old stream, which may be closed,
        # and the error would escape into whatever code was logging.
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(role: str, level: str = "INFO", log_file: str | Path | None = None) -> None:
    """Configure the root logger for a process playing ``role`` (bridge, learner, ...).

    Lines go to stderr and, when ``log_file`` is given, to that file as well.
    Calling it again replaces the previous configuration.
    """
    formatter = logging.Formatter(FORMAT.format(role=role))
    handlers: list[logging.Handler] = [_StderrHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
