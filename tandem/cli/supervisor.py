"""Supervises Tandem's processes on one machine (what ``tandem up`` runs).

Each child runs in its own process group with stdout and stderr merged; every
line is forwarded to the console and to ``<log_dir>/<role>.log``, prefixed by
the role. The log file (mode 0600) gets every line with its tokens redacted (the
console still shows the one-time login link); children are told, through
``LOG_CAPTURED_ENV``, not to write that file themselves, so each line is
written once. A child that exits is restarted with exponential back-off (reset
after it has stayed up for a while). ``stop`` sends SIGTERM to the children
group by group (``ChildSpec.stop_group``, ascending: ``tandem up`` stops the
bridges before the server and the learner that consume their messages), waits
for each group, SIGKILLs what is left, and pauses ``drain_s`` between groups.
The state of every child is written as JSON to ``status_path`` after each
change (a ``ProcessTable``, replaced atomically) so the server can show it
(``server/routers/processes.py`` reads it; the schema is ``tandem.processes``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tandem.logs import LOG_CAPTURED_ENV, open_private, redact_tokens
from tandem.processes import ChildState, ProcessTable

log = logging.getLogger(__name__)

# Set in every child's environment: the supervisor's pid (see ``follow_supervisor``).
SUPERVISOR_PID_ENV = "TANDEM_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def follow_supervisor() -> None:
    """In a supervised child: get SIGTERM when the supervisor dies, even by SIGKILL.

    ``stop`` shuts children down in order, but a supervisor that is killed
    outright cannot; without this its children would live on as orphans,
    holding the ports and the robot. SIGTERM lets each one stop cleanly (the
    bridge ends its episode, the learner checkpoints). Linux only (prctl); a
    no-op elsewhere and outside ``tandem up``.
    """
    expected = os.environ.pop(SUPERVISOR_PID_ENV, None)  # not for our own children
    if not expected or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("cannot follow the supervisor: prctl errno %d", ctypes.get_errno())
        return
    if str(os.getppid()) != expected:  # it died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


@dataclass(frozen=True)
class ChildSpec:
    """A process to supervise: its role name, command line and extra environment.

    ``stop_group``: children stop in ascending groups, each group after the one
    before has exited (producers first, so consumers receive their last messages).
    """

    role: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stop_group: int = 0


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial_s`` doubling up to ``max_s``; reset after ``stable_s`` up."""

    initial_s: float = 1.0
    max_s: float = 30.0
    stable_s: float = 60.0

    def delay(self, consecutive_failures: int) -> float:
        return min(self.max_s, self.initial_s * 2 ** max(0, consecutive_failures - 1))


class _Child:
    def __init__(self, spec: ChildSpec, log_dir: Path, console: TextIO) -> None:
        self.spec = spec
        self.state = ChildState(role=spec.role)
        self.proc: subprocess.Popen[bytes] | None = None
        self.failures = 0
        self.started_mono = 0.0
        self.restart_at = 0.0
        self._log_path = log_dir / f"{spec.role}.log"
        self._console = console
        self._pump: threading.Thread | None = None

    def start(self) -> None:
        env = {**os.environ, **self.spec.env, "PYTHONUNBUFFERED": "1", LOG_CAPTURED_ENV: "1"}
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        self.proc = subprocess.Popen(
            self.spec.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.started_mono = time.monotonic()
        self.state.status, self.state.pid = "running", self.proc.pid
        self.state.started_wall, self.state.next_start_wall = time.time(), None
        self._pump = threading.Thread(target=self._forward, args=(self.proc,), daemon=True)
        self._pump.start()
        log.info("started %s (pid %d): %s", self.spec.role, self.proc.pid, " ".join(self.spec.argv))

    def _forward(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        prefix = f"[{self.spec.role}] "
        with open(open_private(self._log_path), "ab") as file:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                file.write((redact_tokens(line) + "\n").encode())
                file.flush()
                self._console.write(prefix + line + "\n")
                self._console.flush()

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it exited in between
                os.killpg(self.proc.pid, signum)

    def join_output(self, timeout: float = 2.0) -> None:
        if self._pump is not None:
            self._pump.join(timeout)


class Supervisor:
    """Runs children until ``stop`` is called; restarts crashed ones with back-off."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        log_dir: str | Path,
        status_path: str | Path | None = None,
        *,
        backoff: Backoff | None = None,
        stop_timeout_s: float = 15.0,
        drain_s: float = 0.5,
        console: TextIO | None = None,
    ) -> None:
        roles = [s.role for s in specs]
        if len(set(roles)) != len(roles):
            raise ValueError(f"child roles must be unique, got {roles}")
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.status_path = Path(status_path) if status_path else None
        self.backoff = backoff or Backoff()
        self.stop_timeout_s = stop_timeout_s
        self.drain_s = drain_s
        self._children = [_Child(s, self.log_dir, console or sys.stdout) for s in specs]
        self._stop = threading.Event()

    def states(self) -> list[ChildState]:
        return [c.state.model_copy() for c in self._children]

    def stop(self) -> None:
        """Ask ``run`` to shut every child down and return."""
        self._stop.set()

    def run(self, poll_s: float = 0.2, on_change: Callable[[], None] | None = None) -> None:
        """Start every child and keep them running until ``stop``; then shut down."""
        for child in self._children:
            child.start()
        self._write_status()
        while not self._stop.wait(poll_s):
            if any([self._tend(child) for child in self._children]):
                self._write_status()
                if on_change is not None:
                    on_change()
        self._shutdown()

    def _tend(self, child: _Child) -> bool:
        """Restart or schedule a restart of one child; True when its state changed."""
        now = time.monotonic()
        if child.state.status == "backoff":
            if now < child.restart_at:
                return False
            child.state.restarts += 1
            child.start()
            return True
        assert child.proc is not None
        code = child.proc.poll()
        if code is None:
            return False
        up_for = now - child.started_mono
        child.failures = 1 if up_for >= self.backoff.stable_s else child.failures + 1
        delay = self.backoff.delay(child.failures)
        child.restart_at = now + delay
        child.state.status, child.state.pid, child.state.last_exit_code = "backoff", None, code
        child.state.last_exit_wall = time.time()
        child.state.next_start_wall = child.state.last_exit_wall + delay
        log.warning("%s exited with code %s; restarting in %.1f s", child.spec.role, code, delay)
        return True

    def _shutdown(self) -> None:
        groups = sorted({c.spec.stop_group for c in self._children})
        for i, group in enumerate(groups):
            if i:
                time.sleep(self.drain_s)  # messages the last group sent are still in flight
            self._stop_children([c for c in self._children if c.spec.stop_group == group])
        self._write_status()

    def _stop_children(self, children: list[_Child]) -> None:
        for child in children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s ignored SIGTERM; killing it", child.spec.role)
                child.signal(signal.SIGKILL)
                child.proc.wait()
            if child.state.status != "backoff":  # else it had exited already and was recorded
                child.state.last_exit_code = child.proc.returncode
                child.state.last_exit_wall = time.time()
            child.state.status, child.state.pid = "stopped", None
            child.state.next_start_wall = None
            child.join_output()

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        table = ProcessTable(t_wall=time.time(), supervisor_pid=os.getpid(), children=self.states())
        tmp = self.status_path.with_name(self.status_path.name + ".tmp")
        tmp.write_text(table.model_dump_json(indent=1))
        tmp.replace(self.status_path)
