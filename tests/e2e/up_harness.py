"""``tandem up`` as a real subprocess on free loopback ports, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from tandem import security
from tests.polling import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class TandemUp:
    """One data directory and port set; ``start()`` / ``stop()`` may be called repeatedly."""

    def __init__(self, data: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data, self.port = data, free_port()
        self.tcp = {name: f"tcp://127.0.0.1:{free_port()}" for name in ("pub", "cmd", "w", "m")}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")},
            "TANDEM_DATA_DIR": str(data),
            "TANDEM_SERVER__PORT": str(self.port),
            "TANDEM_BRIDGE__PUB_ENDPOINT": self.tcp["pub"],
            "TANDEM_BRIDGE__CMD_ENDPOINT": self.tcp["cmd"],
            "TANDEM_LEARNER__WEIGHTS_ENDPOINT": self.tcp["w"],
            "TANDEM_LEARNER__METRICS_ENDPOINT": self.tcp["m"],
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def policy(self) -> security.Policy:
        """The keys ``tandem up`` made in the data directory (its sockets accept no other)."""
        keys = security.load_keys(self.data / "keys")
        assert keys is not None, "tandem up made no keys"
        return security.Policy(keys)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *args: str) -> None:
        """``tandem up ARGS``."""
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tandem", "up", *args], cwd=ROOT, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        stdout = self.proc.stdout
        assert stdout is not None
        self._reader = threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True)
        self._reader.start()

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def wait_ready(self, timeout: float = 120) -> None:
        wait_for(lambda: http_ok(self.url + "/"), timeout, "the dashboard")
        wait_for(lambda: self.logged("publishing on"), timeout, "the bridge")
        wait_for(lambda: self.logged("ingest subscribed"), timeout, "the learner")

    def children(self) -> dict[str, dict[str, Any]]:
        try:
            status = json.loads((self.data / "processes.json").read_text())
        except (OSError, ValueError):
            return {}
        return {c["role"]: c for c in status["children"]}

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as Ctrl-C or a service manager would; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            self.kill()
        if self._reader is not None:
            self._reader.join(10)  # the rest of the output
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def operator(self, *args: str, report: Path, timeout: float = 240) -> dict[str, Any]:
        """Run ``tandem demo-operator`` against this server; returns its parsed report."""
        done = subprocess.run(
            [sys.executable, "-m", "tandem", "demo-operator", "--url", self.url,
             "--report", str(report), *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return {"stdout": done.stdout, "reports": json.loads(report.read_text())}

    def api(self, path: str, token: str) -> Any:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
