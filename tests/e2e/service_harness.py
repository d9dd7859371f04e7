"""Real processes on loopback for the learner-service tests: bridges, learner, an operator.

The operator is a thread that plays the human: while a bridge is in teleop or
intervention mode it answers every step record with the scripted expert's
action for that observation, sent as a ``TeleopAction`` command (one tick late,
like a person).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from sim import expert_for
from tandem import wire
from tandem.messages import ResetDone, StartDemo, StepRecord, TeleopAction
from tests.robot_bridge.conftest import Collector, CommandClient, endpoint

REPO = Path(__file__).resolve().parents[2]
# The operator acts a tick late, like a person; the scripted expert is a deadbeat
# proportional controller, which oscillates with that delay at full gain.
GAIN = 0.35

LEARNER_TOML = """
[learner]
device = "cpu"
obs = "state"
threads = 1
hidden_dim = 32
state_actor_layers = 1
critic_layers = 1
num_q = 2
num_k = 2
batch_size = 32
update_freq = 1
num_critic_updates = 1
min_buffer = 32
bc_steps = 150
bc_hidden_dim = 32
bc_layers = 1
bc_lr = 0.001
bridges = {bridges}
weights_endpoint = "{weights}"
metrics_endpoint = "{metrics}"

[learner_service]
min_transitions = 32
utd = 1.0
max_updates_per_s = 40
publish_every_updates = 25
refit_min_intervention_steps = {refit_min}
refit_steps = 40
checkpoint_every_s = 1.5
metrics_period_s = 0.25
label_grace_s = 0.5
"""

BRIDGE_TOML = """
[bridge]
robot = "sim:lift"
robot_id = "{robot_id}"
rate_hz = {rate}
cameras = ["front"]
image_size = 32
horizon = {horizon}
pub_endpoint = "{pub}"
cmd_endpoint = "{cmd}"
weights_endpoint = "{weights}"
policy = "learner"
seed = {seed}
status_period_s = 0.2
next_episode_on_reset = false
"""


@dataclass
class BridgeProc:
    robot_id: str
    pub: str
    cmd: str
    proc: subprocess.Popen[bytes]
    sub: Collector
    client: CommandClient

    def status(self) -> Any:
        return self.sub.last_status()

    def steps(self) -> list[StepRecord]:
        return [d.msg for d in self.sub.get("step")]  # type: ignore[misc]


@dataclass
class System:
    """Config files, processes and sockets of one test; ``close`` cleans everything up."""

    tmp: Path
    ctx: zmq.Context
    weights: str = field(default_factory=endpoint)
    metrics_ep: str = field(default_factory=endpoint)
    bridges: list[BridgeProc] = field(default_factory=list)
    learner: subprocess.Popen[bytes] | None = None
    recorder: subprocess.Popen[bytes] | None = None
    metrics_sub: Collector | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "runs" / "learner"

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.tmp / f"{name}-{len(self.logs)}.log"
        self.logs.append(log_path)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        env.pop("TANDEM_CONFIG", None)
        out = open(log_path, "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)

    def start_bridge(self, robot_id: str, *, rate: int = 20, horizon: int = 80, seed: int = 0):
        pub, cmd = endpoint(), endpoint()
        cfg = self.tmp / f"bridge-{robot_id}.toml"
        text = f'data_dir = "{self.data_dir}"\n' + BRIDGE_TOML.format(
            robot_id=robot_id, rate=rate, horizon=horizon, pub=pub, cmd=cmd,
            weights=self.weights, seed=seed,
        )  # fmt: skip
        cfg.write_text(text)
        proc = self._spawn(f"bridge-{robot_id}", _tandem("bridge", "--config", str(cfg)))
        b = BridgeProc(
            robot_id, pub, cmd, proc, Collector(pub, self.ctx), CommandClient(cmd, self.ctx)
        )
        self.bridges.append(b)
        wait(lambda: b.status() is not None, 60, f"bridge {robot_id} status", self)
        return b

    def learner_config(self, refit_min: int = 10, service: str = "") -> Path:
        """The learner's TOML; ``service``: more ``[learner_service]`` lines."""
        cfg = self.tmp / "learner.toml"
        bridges = json.dumps([b.pub for b in self.bridges])
        text = f'data_dir = "{self.data_dir}"\n' + LEARNER_TOML.format(
            bridges=bridges, weights=self.weights, metrics=self.metrics_ep, refit_min=refit_min
        )
        cfg.write_text(text + service)
        return cfg

    def start_learner(
        self, *extra: str, refit_min: int = 10, service: str = ""
    ) -> subprocess.Popen[bytes]:
        cfg = self.learner_config(refit_min, service)
        self.learner = self._spawn("learner", _tandem("learner", "--config", str(cfg), *extra))
        if self.metrics_sub is None:
            self.metrics_sub = Collector(self.metrics_ep, self.ctx)
        n = len(self.metrics_sub.get("metrics"))
        wait(lambda: len(self.metrics_sub.get("metrics")) > n, 60, "learner metrics", self)
        return self.learner

    def start_recorder(self, bridge: BridgeProc) -> None:
        if importlib.util.find_spec("server") and importlib.util.find_spec("server.recorder"):
            argv = [sys.executable, "-m", "server.recorder", "--data-dir", str(self.data_dir),
                    "--endpoint", bridge.pub, "--flush-every", "0.2"]  # fmt: skip
        else:
            standin = str(Path(__file__).with_name("recorder_standin.py"))
            argv = [sys.executable, standin, str(self.data_dir), bridge.pub]
        self.recorder = self._spawn("recorder", argv)

    def metrics(self) -> dict[str, Any]:
        assert self.metrics_sub is not None
        got = self.metrics_sub.get("metrics")
        return dict(got[-1].msg.metrics) if got else {}  # type: ignore[attr-defined]

    def wait_metric(self, name: str, pred: Callable[[Any], bool], timeout: float) -> Any:
        def check() -> bool:
            value = self.metrics().get(name)
            return value is not None and pred(value)

        wait(check, timeout, f"metric {name}", self)
        return self.metrics()[name]

    def stop_learner(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.learner is not None
        self.learner.send_signal(sig)
        rc = self.learner.wait(timeout)
        self.learner = None
        return rc

    def close(self) -> None:
        procs = [b.proc for b in self.bridges] + [self.learner, self.recorder]
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in procs:
            if proc is not None:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        for b in self.bridges:
            b.sub.close()
            b.client.close()
        if self.metrics_sub is not None:
            self.metrics_sub.close()

    def dump_logs(self) -> str:
        return "\n".join(
            f"===== {p.name}\n{p.read_text()[-6000:]}" for p in self.logs if p.exists()
        )


def _tandem(*args: str) -> list[str]:
    return [sys.executable, "-m", "tandem", *args]


def wait(cond: Callable[[], Any], timeout: float, what: str, system: System | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    logs = system.dump_logs() if system is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")


class Operator:
    """Drives a bridge with the scripted expert whenever a human should (teleop/intervention)."""

    def __init__(self, bridge: BridgeProc, ctx: zmq.Context) -> None:
        self.bridge = bridge
        self.expert = expert_for("lift")
        self.sent = 0
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"step")
        sub.connect(self.bridge.pub)
        client = CommandClient(self.bridge.cmd, self._ctx)
        try:
            while not self._stop.is_set():
                if not sub.poll(50):
                    continue
                newest = None
                while sub.poll(0):
                    newest = wire.decode(sub.recv_multipart()).msg
                if isinstance(newest, StepRecord) and newest.mode in ("teleop", "intervention"):
                    action = self.expert({"state": np.asarray(newest.state, np.float32)})
                    action[:6] *= GAIN
                    body = TeleopAction(action=[float(a) for a in action], t_input=time.monotonic())
                    client.send(body)
                    self.sent += 1
        finally:
            client.close()
            sub.close(0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def record_demo(system: System, bridge: BridgeProc, timeout: float = 30.0) -> Any:
    """One teleop episode driven by the operator; returns its end event."""
    n_end = len(bridge.sub.events("end"))
    reply = bridge.client.send(StartDemo(operator="expert"))
    assert reply.ok, reply.reason
    end = wait(lambda: bridge.sub.events("end")[n_end:], timeout, "demo end", system)[0]
    assert bridge.client.send(ResetDone()).ok
    return end
