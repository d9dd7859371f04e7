"""The launcher's status file: what ``tandem up`` runs, as the server reads it.

The launcher (``tandem.cli.supervisor``) rewrites ``<data_dir>/processes.json``
atomically after every change of a child; the server
(``server/routers/processes.py``) reads it. The schema lives here, in the
contracts layer, so neither side imports the other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ChildStatus = Literal["starting", "running", "backoff", "stopped"]


class ChildState(BaseModel):
    """One supervised child as written to the status file; times are Unix wall time, s."""

    role: str
    status: ChildStatus = "starting"
    pid: int | None = Field(None, description="Process id while it runs.")
    restarts: int = Field(0, description="How many times it was started again after exiting.")
    last_exit_code: int | None = Field(
        None, description="Exit status of the last exit; negative: killed by that signal."
    )
    started_wall: float | None = Field(None, description="When it was last started.")
    next_start_wall: float | None = Field(None, description="When it restarts (in backoff).")
    last_exit_wall: float | None = Field(None, description="When it last exited.")


class ProcessTable(BaseModel):
    """The status file (``<data_dir>/processes.json`` under ``tandem up``).

    Fields are only ever added, so a reader of an older file gets the defaults.
    """

    t_wall: float = Field(description="When the file was written, Unix time s.")
    supervisor_pid: int | None = Field(None, description="Process id of the supervisor.")
    children: list[ChildState]
