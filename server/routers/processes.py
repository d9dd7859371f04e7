"""Processes started by ``tandem up`` (``/api/processes``), read from the supervisor's file.

``tandem up`` runs the server, the bridges and the learner under
``tandem.cli.supervisor.Supervisor``, which rewrites ``<data_dir>/processes.json``
(a ``ProcessTable``, replaced atomically) after every start, exit and restart.
A server started on its own has no such file and answers ``supervised: false``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, ValidationError

from server.deps import CurrentUser, SettingsDep
from server.responses import LOGIN
from tandem.processes import ChildState, ProcessTable

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["processes"], responses=LOGIN)

STATUS_FILE = "processes.json"


class ProcessesOut(BaseModel):
    supervised: bool = Field(description="A supervisor's status file exists (`tandem up`).")
    supervisor_alive: bool | None = Field(
        description="The supervisor process still runs; None when unknown (no file, or a file "
        "without its pid). False: the children's states are the last ones it wrote."
    )
    t_wall: float | None = Field(description="When the file was written, Unix time s.")
    server_time: float = Field(description="The server's Unix time s (to age the timestamps).")
    children: list[ChildState] = Field(description="One per supervised process, in start order.")


class UnreadableStatusError(Exception):
    """The status file exists but cannot be read as a process table."""


def read_table(path: Path) -> ProcessTable | None:
    """The process table at ``path``, or None when there is none.

    Raises ``UnreadableStatusError`` (with the reason) when it cannot be read or validated.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UnreadableStatusError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return ProcessTable.model_validate_json(raw)
    except ValidationError as exc:
        raise UnreadableStatusError(f"{path} is not a valid process table: {_errors(exc)}") from exc


def _errors(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def pid_alive(pid: int | None) -> bool | None:
    """Whether a process with this id exists on this machine; None when ``pid`` is unknown."""
    if pid is None or pid <= 0:
        return None
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OverflowError:
        return None
    return True


class _ProblemLog:
    """Logs each new problem with the file once, not on every poll of every dashboard."""

    def __init__(self) -> None:
        self.last: str | None = None

    def report(self, problem: str | None) -> None:
        if problem is not None and problem != self.last:
            log.warning("%s", problem)
        self.last = problem


_problems = _ProblemLog()


@router.get(
    "/processes",
    response_model=ProcessesOut,
    responses={503: {"description": "The status file exists but cannot be read."}},
)
def list_processes(user: CurrentUser, settings: SettingsDep) -> ProcessesOut:
    """The supervised processes (role, status, pid, restarts, last exit) under ``tandem up``."""
    try:
        table = read_table(settings.data_dir / STATUS_FILE)
    except UnreadableStatusError as exc:
        _problems.report(str(exc))
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    _problems.report(None)
    if table is None:
        return ProcessesOut(
            supervised=False,
            supervisor_alive=None,
            t_wall=None,
            server_time=time.time(),
            children=[],
        )
    return ProcessesOut(
        supervised=True,
        supervisor_alive=pid_alive(table.supervisor_pid),
        t_wall=table.t_wall,
        server_time=time.time(),
        children=table.children,
    )
