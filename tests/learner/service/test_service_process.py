"""``tandem learner`` as a real process (issue 17): SIGTERM checkpoints the latest update,
and a thread that cannot continue ends the process with a non-zero code."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from learner.checkpoint import load_checkpoint
from learner.service.supervise import EXIT_FATAL
from tandem.messages import EpisodeKind, LearnerMetrics, Outcome
from tandem.wire import decode
from tests.learner.service.helpers import Bridge, end, start, step
from tests.polling import free_port

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[3]
N = 20  # steps per synthetic episode

CONFIG = """
data_dir = "{data}"

[learner]
device = "cpu"
obs = "state"
threads = 1
hidden_dim = 16
state_actor_layers = 1
critic_layers = 1
num_q = 2
batch_size = 8
update_freq = 1
num_critic_updates = 1
min_buffer = 8
bc_steps = 5
bc_hidden_dim = 16
bc_layers = 1
online_min_demos = 1
online_warmup_rollouts = 0
online_warmup_updates = 0
bridges = ["{bridge}"]
weights_endpoint = "tcp://127.0.0.1:{weights}"
metrics_endpoint = "tcp://127.0.0.1:{metrics}"

[learner_service]
min_transitions = 8
utd = 50.0
max_updates_per_s = 200
publish_every_updates = 50
metrics_period_s = 0.1
label_grace_s = 0
"""

# Runs ``tandem learner`` with its ingest thread ending at once (as if an error had escaped).
DEAD_INGEST = """
import sys
from learner.service.ingest import Ingest
Ingest._run = lambda self, sockets: None
from tandem.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


class Learner:
    """A ``tandem learner`` process fed by a stand-in bridge; reads its metrics."""

    def __init__(self, tmp: Path, ctx: zmq.Context, prefix: list[str]) -> None:
        self.bridge = Bridge(ctx)
        metrics = free_port()
        cfg = tmp / "learner.toml"
        cfg.write_text(CONFIG.format(data=tmp / "data", bridge=self.bridge.endpoint,
                                     weights=free_port(), metrics=metrics))  # fmt: skip
        self.run_dir = tmp / "data" / "runs" / "learner"
        self.log = tmp / "learner.log"
        with open(self.log, "wb") as out:
            argv = [*prefix, "learner", "--config", str(cfg)]
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, LearnerMetrics.TOPIC.encode())
        self.sub.connect(f"tcp://127.0.0.1:{metrics}")
        self.update_step = 0
        self.seq = 0

    def read_metrics(self, timeout_s: float) -> None:
        """Take every metrics message that arrives within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.sub.poll(max(0, int(1000 * (deadline - time.monotonic())))):
            msg = decode(self.sub.recv_multipart()).msg
            assert isinstance(msg, LearnerMetrics)
            self.update_step = max(self.update_step, msg.update_step)

    def send_episode(self, episode: str, kind: EpisodeKind = EpisodeKind.ROLLOUT) -> None:
        msgs = [start("r", episode, seq=self.seq, kind=kind)]
        msgs += [step("r", episode, t, seq=self.seq + t, kind=kind) for t in range(N)]
        msg, images = end("r", episode, N, seq=self.seq + 1, kind=kind, terminated=True)
        msgs.append((msg.model_copy(update={"outcome": Outcome.SUCCESS}), images))
        self.bridge.send(msgs)
        self.seq += N

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.sub.close()
        self.bridge.sock.close()


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.term()


def test_sigterm_checkpoints_the_latest_update(tmp_path: Path, ctx: zmq.Context) -> None:
    learner = Learner(tmp_path, ctx, [sys.executable, "-m", "tandem"])
    try:
        learner.bridge.wait_subscribed()
        learner.send_episode("demo", EpisodeKind.DEMO)
        deadline = time.monotonic() + 120
        for i in range(1000):
            learner.send_episode(f"rollout-{i}")
            learner.read_metrics(0.3)
            if learner.update_step >= 200 or time.monotonic() > deadline:
                break
        assert learner.update_step >= 200, learner.output()
        learner.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        learner.read_metrics(1.0)
        assert learner.proc.wait(15) == 0, learner.output()  # within tandem up's stop timeout
        stopped_s = time.monotonic() - t0
    finally:
        learner.close()
    ckpt = load_checkpoint(learner.run_dir / "checkpoint.pt")
    saved = ckpt["agent"]["counters"]["num_updates"]
    assert saved >= learner.update_step, (saved, learner.update_step, learner.output())
    assert f"checkpoint at update {saved} in" in learner.output()
    assert stopped_s < 15


def test_a_kill_loses_at_most_ten_seconds_of_training(tmp_path: Path, ctx) -> None:
    """Periodic checkpoints (default interval, at most 10 s): after training for 11.5 s
    past update ``before``, a kill -9 leaves a checkpoint at or after it."""
    learner = Learner(tmp_path, ctx, [sys.executable, "-m", "tandem"])
    try:
        learner.bridge.wait_subscribed()
        learner.send_episode("demo", EpisodeKind.DEMO)
        learner.send_episode("rollout-0")
        while learner.update_step < 20:
            learner.read_metrics(0.5)
            assert learner.proc.poll() is None, learner.output()
        before, t0 = learner.update_step, time.monotonic()
        for i in range(1, 1000):
            learner.send_episode(f"rollout-{i}")  # keep it training
            learner.read_metrics(0.5)
            if time.monotonic() - t0 > 11.5:
                break
        assert learner.update_step > before
        learner.proc.kill()
        learner.proc.wait(10)
    finally:
        learner.close()
    saved = load_checkpoint(learner.run_dir / "checkpoint.pt")["agent"]["counters"]
    assert saved["num_updates"] >= before, (saved, before, learner.output())


def test_a_thread_that_cannot_continue_ends_the_process_non_zero(tmp_path: Path, ctx) -> None:
    learner = Learner(tmp_path, ctx, [sys.executable, "-c", DEAD_INGEST])
    try:
        rc = learner.proc.wait(120)
    finally:
        learner.close()
    assert rc == EXIT_FATAL, learner.output()
    assert "learner cannot continue: the ingest thread ended unexpectedly" in learner.output()
