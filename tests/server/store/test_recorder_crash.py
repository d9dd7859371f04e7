"""Crash test: ``kill -9`` the recorder process mid-episode while a bridge keeps publishing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from server.store import EpisodeStore
from tandem.episodes import PARTIAL_SUFFIX, list_episodes, load_episode, read_meta
from tests.server.store._support import FakeBridge, wait_until

REPO = Path(__file__).resolve().parents[3]
FLUSH_S = 0.5
RATE_HZ = 20.0
STEPS = 80  # 4 s episodes


class Publisher(threading.Thread):
    """Publishes episodes ep000, ep001, ... at RATE_HZ until stopped; logs send times."""

    def __init__(self, bridge: FakeBridge) -> None:
        super().__init__(daemon=True)
        self.bridge = bridge
        self.halt = threading.Event()
        self.sent: list[tuple[str, int, float]] = []

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            eid = f"ep{n:03d}"
            self.bridge.start(eid)
            for i in range(STEPS):
                if self.halt.is_set():
                    return
                self.bridge.step(eid, i)
                self.sent.append((eid, i, time.monotonic()))
                time.sleep(1.0 / RATE_HZ)
            self.bridge.end(eid, STEPS)
            n += 1


def _spawn(data: Path, endpoint: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "server.recorder", "--data-dir", str(data),
           "--endpoint", endpoint, "--flush-every", str(FLUSH_S)]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def _finished(root: Path) -> list[Path]:
    return list_episodes(root)


def _partial(root: Path, min_steps: int) -> Path | None:
    for path in root.glob(f"*/*{PARTIAL_SUFFIX}"):
        try:
            if read_meta(path).num_steps >= min_steps:
                return path
        except ValueError:
            continue
    return None


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_kill_9_mid_episode_loses_nothing_flushed(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "recorder.log"
    root = data / "episodes"
    bridge = FakeBridge("robot0")
    publisher = Publisher(bridge)
    proc = _spawn(data, bridge.endpoint, log)
    publisher.start()
    try:
        wait_until(lambda: len(_finished(root)) >= 2, 60, "two finished episodes")
        wait_until(lambda: _partial(root, 30) is not None, 30, "a partial with flushed steps")
        proc.send_signal(signal.SIGKILL)
        t_kill = time.monotonic()
        proc.wait(10)
        partial = _partial(root, 30)
        assert partial is not None
        before = {p.name: _digest(p) for p in _finished(root)}
        flushed = load_episode(partial)
        interrupted = partial.name[: -len(PARTIAL_SUFFIX)]

        proc = _spawn(data, bridge.endpoint, log)  # the bridge never stopped publishing

        def resumed() -> bool:
            new = [p for p in _finished(root) if p.name not in before and p.name != interrupted]
            return sum(read_meta(p).complete for p in new) >= 2

        wait_until(resumed, 60, "two complete episodes after the restart")
    finally:
        publisher.halt.set()
        publisher.join(5)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()[-3000:]
        bridge.close()

    # Earlier episodes are byte-identical.
    for path in _finished(root):
        if path.name in before:
            assert _digest(path) == before[path.name], f"{path.name} was rewritten"

    # The interrupted episode holds exactly what was flushed, and nothing was flushed late.
    recovered = load_episode(root / "robot0" / interrupted)
    assert not recovered.meta.complete and recovered.meta.end_reason == "interrupted"
    assert len(recovered) == len(flushed) >= 30
    assert recovered.steps["step"].tolist() == list(range(len(recovered)))
    np.testing.assert_array_equal(recovered.steps["state"], flushed.steps["state"])
    np.testing.assert_array_equal(recovered.images["front"], flushed.images["front"])
    sent_early = [s for e, s, t in publisher.sent if e == interrupted and t < t_kill - 3 * FLUSH_S]
    assert len(recovered) >= len(sent_early), "a step older than the flush interval was lost"

    # The database agrees with the files.
    assert not list(root.glob(f"*/*{PARTIAL_SUFFIX}"))
    store = EpisodeStore(None, data)
    try:
        rows, total = store.list_episodes(limit=1000)
        dirs = {p.name: read_meta(p) for p in _finished(root)}
        assert total == len(dirs) and {r.id for r in rows} == set(dirs)
        for row in rows:
            meta = dirs[row.id]
            assert (row.length, row.complete, row.recording) == (
                meta.num_steps,
                meta.complete,
                False,
            )
        assert not store.get_episode(interrupted).complete
        complete = [r for r in rows if r.complete]
        assert len(complete) >= 2 and all(r.length == STEPS for r in complete)
    finally:
        store.close()
    assert os.path.exists(data / "tandem.db")
