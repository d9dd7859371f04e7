import io
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from tandem.cli.supervisor import Backoff, ChildSpec, ProcessTable, Supervisor

pytestmark = pytest.mark.timeout(60)

GRACEFUL = """
import signal, sys, time, pathlib
def bye(*_):
    pathlib.Path(sys.argv[1]).write_text("clean")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
CRASHING = "print('boom', flush=True); raise SystemExit(3)"


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def run_in_thread(sup: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=sup.run, kwargs={"poll_s": 0.05}, daemon=True)
    thread.start()
    return thread


def test_output_is_prefixed_by_role_in_console_and_log(tmp_path: Path):
    console = io.StringIO()
    marker = tmp_path / "marker"
    sup = Supervisor(
        [ChildSpec("bridge", [sys.executable, "-c", GRACEFUL, str(marker)])],
        tmp_path / "logs",
        console=console,
    )
    thread = run_in_thread(sup)
    assert wait_for(lambda: "[bridge] ready" in console.getvalue())
    sup.stop()
    thread.join(20)
    assert (tmp_path / "logs" / "bridge.log").read_text().strip() == "ready"
    assert marker.read_text() == "clean"  # SIGTERM reached it and it shut down cleanly
    assert sup.states()[0].status == "stopped" and sup.states()[0].last_exit_code == 0


def test_crashed_child_is_restarted_with_backoff(tmp_path: Path):
    status = tmp_path / "status.json"
    sup = Supervisor(
        [ChildSpec("learner", [sys.executable, "-c", CRASHING])],
        tmp_path / "logs",
        status,
        backoff=Backoff(initial_s=0.2, max_s=0.4),
        console=io.StringIO(),
    )
    started = time.time()
    thread = run_in_thread(sup)
    assert wait_for(lambda: sup.states()[0].restarts >= 3)
    table = json.loads(status.read_text())
    assert table["supervisor_pid"] == os.getpid()
    child = table["children"][0]
    assert child["role"] == "learner" and child["last_exit_code"] == 3
    assert started <= child["last_exit_wall"] <= time.time()
    if child["status"] == "backoff":  # the restart is scheduled from the exit
        assert child["next_start_wall"] >= child["last_exit_wall"]
    sup.stop()
    thread.join(20)
    assert (tmp_path / "logs" / "learner.log").read_text().count("boom") >= 3


def test_exit_time_and_code_are_recorded_at_shutdown(tmp_path: Path):
    status = tmp_path / "status.json"
    console = io.StringIO()
    sup = Supervisor(
        [ChildSpec("bridge", [sys.executable, "-c", GRACEFUL, str(tmp_path / "marker")])],
        tmp_path / "logs",
        status,
        console=console,
    )
    thread = run_in_thread(sup)
    assert wait_for(lambda: "[bridge] ready" in console.getvalue())
    running = ProcessTable.model_validate_json(status.read_text()).children[0]
    assert running.status == "running" and running.last_exit_wall is None
    stopped_at = time.time()
    sup.stop()
    thread.join(20)
    child = ProcessTable.model_validate_json(status.read_text()).children[0]
    assert child.status == "stopped" and child.pid is None and child.last_exit_code == 0
    assert child.last_exit_wall is not None and child.last_exit_wall >= stopped_at


def test_status_file_of_an_older_supervisor_still_reads():
    old = {
        "t_wall": 1.0,
        "children": [
            {
                "role": "server",
                "status": "running",
                "pid": 42,
                "restarts": 0,
                "last_exit_code": None,
                "started_wall": 0.5,
                "next_start_wall": None,
            }
        ],
    }
    table = ProcessTable.model_validate(old)
    assert table.supervisor_pid is None and table.children[0].last_exit_wall is None
    assert table.children[0].pid == 42


def test_backoff_doubles_up_to_the_cap():
    backoff = Backoff(initial_s=1, max_s=5)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]


def test_child_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path):
    console = io.StringIO()
    sup = Supervisor(
        [ChildSpec("server", [sys.executable, "-c", STUBBORN])],
        tmp_path / "logs",
        stop_timeout_s=0.5,
        console=console,
    )
    thread = run_in_thread(sup)
    assert wait_for(lambda: "[server] ready" in console.getvalue())
    started = time.monotonic()
    sup.stop()
    thread.join(20)
    assert time.monotonic() - started < 5
    assert sup.states()[0].last_exit_code == -9


def test_roles_must_be_unique(tmp_path: Path):
    spec = ChildSpec("a", ["true"])
    with pytest.raises(ValueError, match="unique"):
        Supervisor([spec, spec], tmp_path)


def test_stop_groups_stop_in_order(tmp_path: Path):
    """The producer (group 0) has exited before the consumer (group 1) is asked to stop."""
    marks = tmp_path / "marks"
    record = """
import os, signal, sys, time
def bye(*_):
    with open(sys.argv[1], "a") as f:
        f.write(f"{sys.argv[2]} {time.monotonic()}\\n")
    time.sleep(0.3)  # a slow shutdown
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""
    specs = [
        ChildSpec("consumer", [sys.executable, "-c", record, str(marks), "consumer"], stop_group=1),
        ChildSpec("producer", [sys.executable, "-c", record, str(marks), "producer"]),
    ]
    sup = Supervisor(specs, tmp_path / "logs", console=io.StringIO(), drain_s=0.2)
    thread = run_in_thread(sup)
    logs = [tmp_path / "logs" / f"{role}.log" for role in ("consumer", "producer")]
    try:
        assert wait_for(lambda: all(p.exists() and p.stat().st_size > 0 for p in logs))
    finally:  # never leave the children running
        sup.stop()
        thread.join(20)
    order = [line.split() for line in marks.read_text().splitlines()]
    assert [role for role, _ in order] == ["producer", "consumer"]
    assert float(order[1][1]) - float(order[0][1]) >= 0.3 + 0.2  # its exit, then the drain


SERVER_LIKE = """
import logging, sys, time
from tandem.logs import setup_logging
setup_logging("server", "INFO", sys.argv[1])
logging.getLogger("server.app").warning("started once")
print("Tandem server: log in at http://h:8000/login?token=Sup3rSecret", flush=True)
time.sleep(60)
"""


def test_each_line_is_logged_once_and_the_log_file_has_no_token(tmp_path: Path):
    """A child that sets up its own log file (as `tandem server` does) under `tandem up`."""
    console = io.StringIO()
    log_file = tmp_path / "logs" / "server.log"
    sup = Supervisor(
        [ChildSpec("server", [sys.executable, "-c", SERVER_LIKE, str(log_file)])],
        tmp_path / "logs",
        console=console,
    )
    thread = run_in_thread(sup)
    assert wait_for(lambda: "Sup3rSecret" in console.getvalue())
    sup.stop()
    thread.join(20)
    text = log_file.read_text()
    assert text.count("started once") == 1, text
    assert "Sup3rSecret" not in text and "login?token=<redacted>" in text
    assert (log_file.stat().st_mode & 0o777) == 0o600


KILLED_LAUNCHER = """
import sys
from pathlib import Path
from tandem.cli.supervisor import ChildSpec, Supervisor
child = ChildSpec("arm", [sys.executable, "-m", "tandem", "arm-server", "--driver", "mock",
                          "--bind", sys.argv[2]])
Supervisor([child], log_dir=Path(sys.argv[1]), status_path=Path(sys.argv[1]) / "p.json").run()
"""


def test_children_stop_when_the_launcher_is_killed(tmp_path: Path) -> None:
    """A ``tandem up`` killed with SIGKILL cannot stop its children; they follow it anyway
    (SIGTERM from the kernel) instead of living on as orphans holding ports and the robot."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        ep = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    env = {**os.environ, "TANDEM_DATA_DIR": str(tmp_path)}
    launcher = subprocess.Popen(
        [sys.executable, "-c", KILLED_LAUNCHER, str(tmp_path), ep], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    status = tmp_path / "p.json"
    try:
        assert wait_for(lambda: status.exists() and _child_pid(status) is not None, 20)
        pid = _child_pid(status)
        assert pid is not None and _alive(pid)
        time.sleep(1.0)  # the child is past its start-up and serving
        launcher.kill()
        launcher.wait(10)
        assert wait_for(lambda: not _alive(pid), 15), f"child {pid} outlived its launcher"
    finally:
        launcher.kill()
        pid = _child_pid(status) if status.exists() else None
        if pid is not None and _alive(pid):
            os.kill(pid, 9)


def _child_pid(status: Path) -> int | None:
    try:
        return ProcessTable.model_validate_json(status.read_text()).children[0].pid
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")
