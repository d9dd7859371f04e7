"""Fault injection on a real ``tandem up`` while the scripted operator records demos.

The machinery the CI suite (``tests/faults``) and ``bench/faults.py`` share. A
``Driver`` thread runs the scripted operator episode after episode over the
browser's protocol and reconnects after a fault. The main thread injects faults
at random moments of an episode: kill -9 of a child (server, bridge, learner),
SIGSTOP then SIGCONT of one, or garbage and floods on a ZMQ endpoint. After
each it waits for recovery (the supervisor restarted the child, the learner
resumed and publishes metrics again, an episode finished after the fault).

Nothing here subscribes to tandem's ZMQ streams: recovery is read from
``processes.json``, the log, the REST API, and at the end the episodes are
checked in the database and on disk against the operator's reports, so the
suite works whether or not the sockets require CurveZMQ keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from server.store import EpisodeStore
from tandem.cli.commands.operator import OPERATOR_NAME, local_token
from tandem.cli.operator.link import LinkError, ServerLink
from tandem.cli.operator.script import BUSY, EpisodeReport, OperatorPlan, ScriptedOperator
from tandem.episodes import load_episode
from tandem.settings import load_settings
from teleop.emulated_pad import EmulatedPad
from tests.e2e.up_harness import TandemUp, http_ok

log = logging.getLogger(__name__)

RATE_HZ, HORIZON, FLUSH_S = 20.0, 60, 1.0
ENV = {
    "TANDEM_BRIDGE__SIM_RATE_HZ": str(RATE_HZ),
    "TANDEM_BRIDGE__HORIZON": str(HORIZON),
    "TANDEM_SERVER__FLUSH_EVERY_S": str(FLUSH_S),
    "TANDEM_LEARNER__BC_STEPS": "200",
    "TANDEM_LEARNER_SERVICE__PROFILE": "cpu",
}
# Steps an interrupted episode may lose: those of the last flush interval, plus two for the
# telemetry the operator counted a moment before the recorder stored it.
ALLOWANCE = math.ceil(RATE_HZ * FLUSH_S) + 2
ROLES = ("server", "bridge", "learner")
ENDPOINTS = ("pub", "cmd", "w", "m")  # bridge PUB, bridge commands, learner weights, metrics
RECOVERY_S, EPISODE_S = 90.0, 60.0


@dataclass
class Fault:
    """One injected fault and what was seen after it (``problems`` empty: survived)."""

    kind: str  # "kill server", "stop bridge", "garbage cmd", ...
    index: int
    at: float = 0.0  # time.time() of the injection
    resumed: bool | None = None  # kill learner: it resumed its run from a checkpoint
    problems: list[str] = field(default_factory=list)


@dataclass
class Reported:
    """An episode as the operator saw it, with the fault injected last before it ended."""

    report: EpisodeReport
    fault: int  # index into the fault list; -1: before any fault


# ------------------------------------------------------------------------- the operator
class Driver(threading.Thread):
    """The scripted operator, one demo after another, reconnecting after every fault."""

    def __init__(self, up: TandemUp, token: str) -> None:
        super().__init__(name="fault-operator", daemon=True)
        settings = load_settings(None, data_dir=up.data)
        self.url, self.token, self.teleop = up.url, token, settings.teleop
        self.limits = (settings.bridge.max_translation_m, settings.bridge.max_rotation_rad)
        self.episodes: list[Reported] = []
        self.fault = -1  # set by the injector before each fault
        self.in_episode = threading.Event()
        self.halt = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[Any] | None = None

    def finished(self, after: int) -> int:
        """Episodes the operator saw end (summary received) since fault ``after``."""
        return sum(1 for e in list(self.episodes) if e.fault >= after and e.report.end_reason)

    def interrupt(self) -> None:
        """Abandon the episode being followed (its bridge died: no summary will come)."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        while not self.halt.is_set():
            try:
                async with ServerLink(self.url, self.token) as link:
                    await self._end_leftover(link)
                    while not self.halt.is_set():
                        await self._one_demo(link)
            except (LinkError, OSError, TimeoutError) as exc:
                log.info("operator: %s; reconnecting", exc)
            except Exception:  # a bug of the operator: say so loudly, keep recording
                log.exception("operator failed; reconnecting")
            self.in_episode.clear()
            await asyncio.sleep(0.5)

    async def _end_leftover(self, link: ServerLink) -> None:
        """After a server restart the bridge may still be in the interrupted episode: end it."""
        await link.claim(OPERATOR_NAME)
        state: dict[str, Any] = {}
        while state.get("type") != "state":
            state = await link.next_event(10)
        if state.get("mode") in BUSY:
            await link.command("failure", "fault suite: the episode a fault interrupted")

    async def _one_demo(self, link: ServerLink) -> None:
        plan = OperatorPlan(demos=1, rollouts=0, event_timeout_s=10)
        op = ScriptedOperator(link, EmulatedPad(self.teleop), plan, OPERATOR_NAME, self.limits)
        self._task = task = asyncio.ensure_future(op.run())
        self.in_episode.set()
        try:
            await asyncio.wait({task}, timeout=EPISODE_S)
        finally:
            self.in_episode.clear()
            self._task = None
            task.cancel()
            self.episodes += [Reported(r, self.fault) for r in op.reports]
        if not task.cancelled() and task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


# ------------------------------------------------------------------------- the faults
def inject(up: TandemUp, driver: Driver, fault: Fault, rng: random.Random) -> None:
    """Wait for a random moment of an episode, then inject ``fault``."""
    driver.in_episode.wait(30)
    time.sleep(rng.uniform(0.1, HORIZON / RATE_HZ * 0.8))
    action, target = fault.kind.split()
    driver.fault, fault.at = fault.index, time.time()
    log.info("fault %d: %s", fault.index, fault.kind)
    if action == "kill":
        os.kill(up.children()[target]["pid"], signal.SIGKILL)
        if target == "bridge":
            driver.interrupt()
    elif action == "stop":
        pid = up.children()[target]["pid"]
        os.kill(pid, signal.SIGSTOP)
        time.sleep(rng.uniform(0.5, 3.0))
        os.kill(pid, signal.SIGCONT)
    else:
        garbage(up.tcp[target], rng)


def garbage(endpoint: str, rng: random.Random, seconds: float = 2.0) -> None:
    """Raw TCP junk, a DEALER flooding junk frames, and a SUB that never reads."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    for _ in range(4):
        with (
            socket.create_connection((host, int(port)), timeout=2) as raw,
            contextlib.suppress(OSError),
        ):
            raw.sendall(rng.randbytes(rng.randint(1, 65536)))
    ctx = zmq.Context()
    try:
        dealer, sub = ctx.socket(zmq.DEALER), ctx.socket(zmq.SUB)
        for sock in (dealer, sub):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.RCVHWM, 1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            frames = [rng.randbytes(rng.choice((0, 1, 16, 4096))) for _ in range(rng.randint(1, 4))]
            try:
                dealer.send_multipart([b"cmd", *frames], zmq.NOBLOCK)
            except zmq.Again:  # no peer (refused handshake) or full: try again shortly
                time.sleep(0.001)
    finally:
        ctx.destroy(linger=0)


# ------------------------------------------------------------------------- recovery
def lines_with(up: TandemUp, text: str) -> int:
    return sum(text in line for line in list(up.lines))


def wait_until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


class Watch:
    """What recovery from a fault must look like, measured from just before it."""

    def __init__(self, up: TandemUp, token: str) -> None:
        self.up, self.token = up, token
        self.restarts = {r: c["restarts"] for r, c in up.children().items()}
        self.resumed = lines_with(up, "resuming run")
        self.checkpoint = (up.data / "runs" / "learner" / "checkpoint.pt").exists()

    def recover(self, fault: Fault, driver: Driver) -> None:
        action, target = fault.kind.split()
        killed = target if action == "kill" else None
        if not wait_until(lambda: self.all_running(killed), RECOVERY_S):
            fault.problems.append(f"not every process is running again: {self.up.children()}")
        if killed == "learner":
            self._learner_back(fault)
        if not wait_until(lambda: driver.finished(fault.index) > 0, RECOVERY_S):
            fault.problems.append("no episode finished after the fault")
        for role, c in self.up.children().items():
            extra = c["restarts"] - self.restarts.get(role, 0)
            if extra != int(role == killed):
                fault.problems.append(f"{role} restarted {extra} times")

    def all_running(self, killed: str | None) -> bool:
        children = self.up.children()
        if set(children) != set(ROLES) or not http_ok(self.up.url + "/"):
            return False
        if any(c["status"] != "running" for c in children.values()):
            return False
        # The bridge's readiness shows as an episode finishing, the learner's as fresh metrics.
        return killed is None or children[killed]["restarts"] > self.restarts[killed]

    def _learner_back(self, fault: Fault) -> None:
        if self.checkpoint:
            fault.resumed = wait_until(
                lambda: lines_with(self.up, "resuming run") > self.resumed, RECOVERY_S
            )
            if not fault.resumed:
                fault.problems.append("the learner did not resume its run")
        if not wait_until(lambda: self.metrics_after(fault.at), RECOVERY_S):
            fault.problems.append("the learner published no metrics after its restart")

    def metrics_after(self, t: float) -> bool:
        try:
            latest = self.up.api("/api/metrics/latest", self.token)
        except OSError:
            return False
        return any(row["t_wall"] > t for row in latest)


# ------------------------------------------------------------------------- the checks
def check_episodes(
    data: Path, episodes: list[Reported], faults: list[Fault], baseline: Fault
) -> dict[str, int]:
    """Every episode against the database and its files; a problem goes to the fault injected
    last before the episode ended (``baseline``: before any fault)."""
    counts: Counter[str] = Counter()
    store = EpisodeStore(None, data)
    try:
        for seen in episodes:
            problem = check_one(store, seen.report)
            counts["finished" if seen.report.end_reason else "interrupted"] += 1
            if not seen.report.end_reason:
                stored = _stored_length(store, seen.report.episode_id)
                lost = max(0, seen.report.steps - stored)
                counts["max steps lost when interrupted"] = max(
                    lost, counts.get("max steps lost when interrupted", 0)
                )
            if problem is not None:
                counts["damaged"] += 1
                (faults[seen.fault] if seen.fault >= 0 else baseline).problems.append(problem)
    finally:
        store.close()
    return dict(counts)


def _stored_length(store: EpisodeStore, episode_id: str) -> int:
    try:
        return int(store.get_episode(episode_id).length)
    except Exception:  # not stored: check_one says so
        return 0


def check_one(store: EpisodeStore, report: EpisodeReport) -> str | None:
    """None when the episode is intact (finished) or within the allowance (interrupted)."""
    eid = report.episode_id
    try:
        row = store.get_episode(eid)
        steps = load_episode(store.episode_dir(eid), images=False).steps["step"]
    except Exception as exc:  # missing row or files: report it, whatever the cause
        return f"episode {eid}: not stored ({type(exc).__name__}: {exc})"
    contiguous = np.array_equal(steps, np.arange(len(steps)))
    if row.recording or row.length != len(steps) or not contiguous:
        return f"episode {eid}: row length {row.length}, steps on disk not 0..{len(steps) - 1}"
    if report.end_reason:  # finished: everything, complete
        if not row.complete or row.length != report.steps:
            return f"episode {eid} finished with {report.steps} steps, stored {row.length}" + (
                "" if row.complete else " (incomplete)"
            )
        return None
    lost = report.steps - row.length
    if lost > ALLOWANCE:
        return f"interrupted episode {eid}: {lost} steps lost (allowance {ALLOWANCE})"
    if row.complete and lost > 0:
        return f"interrupted episode {eid}: {lost} steps lost but marked complete"
    return None


# ------------------------------------------------------------------------- the campaign
def schedule(kills: int, stops: int, garbage_rounds: int, seed: int) -> list[str]:
    kinds = [f"kill {r}" for r in ROLES] * kills + [f"stop {r}" for r in ROLES] * stops
    kinds += [f"garbage {e}" for e in ENDPOINTS] * garbage_rounds
    random.Random(seed).shuffle(kinds)
    return kinds


@dataclass
class Campaign:
    """The outcome: every fault, every episode, and the episode counts."""

    faults: list[Fault]
    baseline: Fault  # problems seen before the first fault
    episodes: list[Reported]
    counts: dict[str, int]
    seconds: float

    def table(self) -> list[dict[str, Any]]:
        """Per fault kind: tried, survived, lost."""
        rows: dict[str, dict[str, Any]] = {}
        for f in self.faults:
            row = rows.setdefault(f.kind, {"fault": f.kind, "tried": 0, "survived": 0, "lost": 0})
            row["tried"] += 1
            row["lost" if f.problems else "survived"] += 1
        return [rows[k] for k in sorted(rows)]

    def problems(self) -> list[str]:
        every = [self.baseline, *self.faults]
        return [f"{f.index} {f.kind}: {p}" for f in every for p in f.problems]


def run_campaign(data: Path, kinds: list[str], seed: int) -> Campaign:
    """Start ``tandem up`` in ``data``, inject ``kinds`` in order, stop it, check everything."""
    rng = random.Random(seed)
    up = TandemUp(data, ENV)
    t0 = time.monotonic()
    faults = [Fault(kind, i) for i, kind in enumerate(kinds)]
    up.start()
    try:
        if not wait_until(lambda: Watch(up, "").all_running(None), 120):
            raise AssertionError(f"tandem up did not start: {up.lines[-20:]}")
        driver = Driver(up, local_token(load_settings(None, data_dir=up.data), up.url))
        driver.start()
        if not wait_until(lambda: driver.finished(-1) > 0, RECOVERY_S):
            raise AssertionError("no episode finished before the first fault")
        for fault in faults:
            watch = Watch(up, driver.token)
            inject(up, driver, fault, rng)
            watch.recover(fault, driver)
            log.info("fault %d (%s): %s", fault.index, fault.kind, fault.problems or "survived")
        baseline = Fault("none (before any fault, or at the end)", -1)
        if not Watch(up, driver.token).metrics_after(time.time() - 15):
            baseline.problems.append("the learner published no metrics in the last 15 s")
        driver.halt.set()
        driver.join(EPISODE_S + 10)
        code = up.stop()
        if code != 0:
            faults[-1].problems.append(f"tandem up exited with {code} when stopped")
    finally:
        up.kill()
    counts = check_episodes(data, driver.episodes, faults, baseline)
    return Campaign(faults, baseline, driver.episodes, counts, time.monotonic() - t0)


def save(campaign: Campaign, path: Path) -> None:
    body = {
        "table": campaign.table(), "problems": campaign.problems(), "counts": campaign.counts,
        "seconds": campaign.seconds,
    }  # fmt: skip
    path.write_text(json.dumps(body, indent=1))
