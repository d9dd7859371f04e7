"""Shared helpers: free ports, a running bridge in a thread, a command client, a subscriber."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from robot_bridge.arm_client import ArmClient, LinkError, RemoteDriver
from robot_bridge.backend import RobotBackend
from robot_bridge.bridge import Bridge
from robot_bridge.cameras import CameraSet
from robot_bridge.factory import make_backend
from robot_bridge.policy import ExpertPolicy, PolicySlot
from tandem import security, wire
from tandem.messages import Command, CommandBody, CommandReply
from tandem.settings import BridgeSettings

REPO = Path(__file__).resolve().parents[2]


def sim_available() -> bool:
    try:
        import sim  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def bridge_settings(**over: Any) -> BridgeSettings:
    base: dict[str, Any] = {
        "robot": "mock", "pub_endpoint": endpoint(), "cmd_endpoint": endpoint(),
        "status_period_s": 0.2, "seed": 0,
    }  # fmt: skip
    base.update(over)
    return BridgeSettings(**base)


class Collector:
    """SUB socket drained by a thread; messages kept by topic, in arrival order."""

    def __init__(self, ep: str, ctx: zmq.Context, policy: security.Policy | None = None) -> None:
        self._sock = ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        self._sock.setsockopt(zmq.RCVHWM, 100000)
        security.connect(self._sock, ep, policy)  # None: the process's keys, if any
        self.by_topic: dict[str, list[wire.Decoded]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(50):
                d = wire.decode(self._sock.recv_multipart())
                with self._lock:
                    self.by_topic.setdefault(d.topic, []).append(d)
        self._sock.close(linger=0)

    def get(self, topic: str) -> list[wire.Decoded]:
        with self._lock:
            return list(self.by_topic.get(topic, []))

    def wait_for(self, pred: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            time.sleep(0.01)
        raise AssertionError("condition not met in time")

    def events(self, event: str) -> list[Any]:
        return [d.msg for d in self.get("episode") if d.msg.event == event]  # type: ignore[attr-defined]

    def last_status(self) -> Any:
        statuses = self.get("status")
        return statuses[-1].msg if statuses else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class CommandClient:
    """DEALER client: one command, one reply."""

    def __init__(self, ep: str, ctx: zmq.Context, policy: security.Policy | None = None) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        security.connect(self.sock, ep, policy)
        self.seq = 0

    def send(self, body: CommandBody, timeout: float = 3.0, **kw: Any) -> CommandReply:
        self.seq += 1
        wire.send(self.sock, Command(seq=self.seq, body=body, **kw))
        return self.recv(timeout)

    def send_raw(self, parts: list[bytes], timeout: float = 3.0) -> CommandReply:
        self.sock.send_multipart(parts)
        return self.recv(timeout)

    def recv(self, timeout: float = 3.0) -> CommandReply:
        assert self.sock.poll(int(timeout * 1000)), "no reply from the bridge"
        reply = wire.recv(self.sock, expect=CommandReply).msg
        assert isinstance(reply, CommandReply)
        return reply

    def close(self) -> None:
        self.sock.close(linger=0)


class Running:
    """A started bridge ticking in a thread, with a client and a collector attached."""

    def __init__(self, bridge: Bridge, ctx: zmq.Context) -> None:
        self.bridge = bridge
        self.stop = threading.Event()
        self.sub = Collector(bridge.s.pub_endpoint, ctx)
        self.cmd = CommandClient(bridge.s.cmd_endpoint, ctx)
        self.thread = threading.Thread(target=bridge.run, args=(self.stop,), daemon=True)
        time.sleep(0.2)  # let the subscriber join before the first messages
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.bridge.close()
        self.sub.close()
        self.cmd.close()


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def run_bridge(ctx: zmq.Context) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(
        settings: BridgeSettings | None = None,
        backend: RobotBackend | None = None,
        expert: bool = True,
        cameras: CameraSet | None = None,
    ) -> Running:
        s = settings or bridge_settings()
        be = backend or make_backend(s.robot, s)
        slot = PolicySlot()
        bridge = Bridge(s, be, policy=slot, cameras=cameras, context=ctx)
        bridge.start()
        if expert:
            exp = be.expert()
            assert exp is not None
            slot.load(ExpertPolicy(exp))
        run = Running(bridge, ctx)
        started.append(run)
        return run

    yield start
    for run in started:
        run.close()


def wait_hello(ep: str, ctx: zmq.Context, timeout: float = 30.0) -> RemoteDriver:
    """Wait until an arm-server answers hello on ``ep``."""
    driver = RemoteDriver(ArmClient(ep, 0.3, context=ctx))
    deadline = time.monotonic() + timeout
    while True:
        try:
            driver.hello()
            return driver
        except LinkError:
            if time.monotonic() > deadline:
                raise


def spawn(args: list[str], **env: str) -> subprocess.Popen[bytes]:
    """Start ``python -m tandem ARGS`` from the repo root."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tandem", *args], cwd=REPO, env=full_env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    out = proc.stdout.read() if proc.stdout else b""
    return out.decode(errors="replace")


def record_ticks(run: Running) -> list[float]:
    """The monotonic time of every bridge tick from now on (the list fills as it runs)."""
    ticks: list[float] = []
    tick = run.bridge.tick

    def timed_tick() -> None:
        ticks.append(time.monotonic())
        tick()

    run.bridge.tick = timed_tick  # type: ignore[method-assign]
    return ticks


class RecordingPolicy:
    """A policy for the slot: the mock's expert (or a hold that never succeeds) that records
    what the slot asked of it (``explore`` per step, ``reset`` calls)."""

    def __init__(self, expert: Any | None) -> None:
        self.expert = expert
        self.explore: list[bool] = []
        self.resets = 0
        self.first_states: list[np.ndarray] = []  # the state each episode started from
        self._fresh = False

    def act(self, obs: dict[str, np.ndarray], explore: bool = True) -> tuple[np.ndarray, dict]:
        self.explore.append(explore)
        if self._fresh:
            self.first_states.append(np.array(obs["state"], copy=True))
            self._fresh = False
        if self.expert is None:  # never succeeds: holds still with the gripper open
            return np.array([0, 0, 0, 0, 0, 0, -1.0]), {"proposal": "rl"}
        return np.asarray(self.expert(obs)), {"proposal": "rl"}

    def reset(self) -> None:
        self.resets += 1
        self._fresh = True
