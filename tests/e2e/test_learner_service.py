"""The learner service with real processes on loopback (issue 5, Done when)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from learner.checkpoint import load_checkpoint
from robot_bridge.weights import LearnerPolicySlot
from tandem.episodes import load_episode
from tandem.messages import EndEpisode, HandBack, ResetDone, StartDemo, StartRollout, TakeOver
from tests.e2e.service_harness import REPO, Operator, System, record_demo, wait
from tests.robot_bridge.conftest import CommandClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def system(tmp_path):
    s = System(tmp_path, zmq.Context.instance())
    yield s
    s.close()


def _record_demos(system, bridge, successes: int, tries: int = 5) -> int:
    ok = 0
    for _ in range(tries):
        ok += record_demo(system, bridge).reason == "success"
        if ok >= successes:
            return ok
    raise AssertionError(f"only {ok} of {tries} expert demos succeeded\n{system.dump_logs()}")


def _rollout_with_takeover(system, bridge, policy_steps: int, human_steps: int) -> None:
    """A rollout: the policy acts, the operator takes over for a while, hands back, episode ends."""
    n_steps = len(bridge.steps())
    assert bridge.client.send(StartRollout()).ok
    wait(lambda: len(bridge.steps()) >= n_steps + policy_steps, 20, "policy steps", system)
    assert bridge.client.send(TakeOver(operator="expert")).ok
    human = lambda: sum(s.intervention for s in bridge.steps()[n_steps:])  # noqa: E731
    wait(lambda: human() >= human_steps or bridge.status().mode == "await_reset", 20, "takeover")
    if bridge.status().mode == "intervention":
        assert bridge.client.send(HandBack()).ok
    wait(lambda: bridge.status().mode == "await_reset", 30, "rollout end", system)
    assert bridge.client.send(ResetDone()).ok


@pytest.mark.timeout(170)
def test_demos_pretrain_publish_rollout_intervention_refit(system):
    bridge = system.start_bridge("r0")
    system.start_learner()
    reply = bridge.client.send(StartRollout())
    assert not reply.ok and "no policy" in reply.reason  # refused until the first weights
    operator = Operator(bridge, system.ctx)
    try:
        _record_demos(system, bridge, successes=2)
        # The learner pre-trains on the demos and publishes; the bridge loads and reports it.
        system.wait_metric("weights/version", lambda v: v >= 1, 60)
        wait(lambda: (bridge.status().weights_version or 0) >= 1, 30, "bridge weights", system)
        assert bridge.status().policy_ready
        _rollout_with_takeover(system, bridge, policy_steps=5, human_steps=14)
        human_steps = sum(s.intervention for s in bridge.steps())
        assert human_steps >= 10
        # Every human step of the rollout is in the imitation data, and triggered a refit.
        system.wait_metric("data/intervention_steps", lambda v: v == human_steps, 30)
        system.wait_metric("buffer/interventions", lambda v: v == human_steps, 5)
        system.wait_metric("hil/refits", lambda v: v >= 1, 60)
        refit_version = int(system.wait_metric("hil/refit_weights_version", lambda v: v >= 2, 5))
        wait(lambda: (bridge.status().weights_version or 0) >= refit_version, 30, "refit weights")
        # The bridge acts with the refitted weights.
        n = len(bridge.steps())
        assert bridge.client.send(StartRollout()).ok
        wait(lambda: len(bridge.steps()) >= n + 5, 20, "rollout steps", system)
        acted = [s.policy_info.weights_version for s in bridge.steps()[n:] if s.policy_info]
        assert acted and min(acted) >= refit_version
        bridge.client.send(EndEpisode(label="failure"))
        wait(lambda: bridge.status().weights_lag == 0, 10, "lag 0", system)
        m = system.metrics()
        assert m["ingest/gaps"] == 0 and m["ingest/malformed"] == 0
        assert m["data/demo_episodes"] >= 2 and m["buffer/demo"] > 0
        assert m["hil/intervention_rate"] is not None and m["hil/intervention_rate"] > 0
    finally:
        operator.close()


class RolloutDriver:
    """Runs rollout after rollout on a bridge (reset done after each) until stopped."""

    def __init__(self, system: System, bridge) -> None:
        self.system, self.bridge = system, bridge
        self.episodes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client = CommandClient(self.bridge.cmd, self.system.ctx)
        try:
            while not self._stop.is_set():
                if client.send(StartRollout()).ok:
                    self.episodes += 1
                    while self.bridge.status().mode != "await_reset":
                        time.sleep(0.05)
                    client.send(ResetDone())
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop after the current episode has ended."""
        self._stop.set()
        self._thread.join(30)


def _replay_index(system) -> dict:
    return json.loads((system.run_dir / "replay_index.json").read_text())


def _published(bridge) -> dict[int, tuple[str, int]]:
    """seq -> (episode, step) of every step record the bridge published."""
    return {s.seq: (s.episode_id, s.step) for s in bridge.steps()}


def _assert_replay_holds_exactly(system, bridges) -> None:
    rows = _replay_index(system)["rows"]
    for bridge in bridges:
        published = _published(bridge)
        mine = [r for r in rows if r[0] == bridge.robot_id]
        seqs = [r[3] for r in mine]
        assert len(seqs) == len(set(seqs)), "a step is held twice"
        missing = sorted(set(published) - set(seqs))
        assert not missing, f"{bridge.robot_id}: {len(missing)} published steps not held"
        assert len(seqs) == len(published)
        for _, episode, step, seq, _ in mine:  # each held step is the one the bridge sent
            assert published[seq] == (episode, step)


@pytest.mark.timeout(170)
def test_kill_9_and_resume_keeps_every_published_step(system):
    _kill_9_and_resume(system)


@pytest.mark.timeout(170)
def test_with_the_recorders_store_each_step_is_written_once_and_resume_loses_nothing(system):
    """As under ``tandem up``: the learner reads the recorder's store and keeps no log."""
    store = system.data_dir / "episodes"
    _kill_9_and_resume(system, service=f'recorder_store = "{store}"\n')
    assert not (system.run_dir / "ingest").exists()
    assert not list(system.run_dir.rglob("chunk_*.npz")), "the learner wrote steps of its own"
    assert list(store.rglob("chunk_*.npz")), "the recorder wrote nothing"


def _kill_9_and_resume(system, service: str = "") -> None:
    """kill -9 the learner mid-rollout while training, restart it with --resume: training
    goes on from the checkpoint and the replay holds every published step exactly once."""
    bridge = system.start_bridge("r0", horizon=40)
    system.start_recorder(bridge)
    system.start_learner(service=service)
    operator = Operator(bridge, system.ctx)
    driver = None
    try:
        _record_demos(system, bridge, successes=2)
        wait(lambda: (bridge.status().weights_version or 0) >= 1, 60, "first weights", system)
        driver = RolloutDriver(system, bridge)
        system.wait_metric("learner/update_step", lambda v: v >= 60, 60)
        ckpt = system.run_dir / "checkpoint.pt"
        wait(ckpt.exists, 10, "a checkpoint", system)
        # Kill in the middle of a rollout episode, while training.
        wait(lambda: bridge.status().mode == "rollout" and bridge.status().step >= 5, 20, "mid")
        before = system.metrics()
        system.stop_learner(signal.SIGKILL)
        saved = load_checkpoint(ckpt)["agent"]["counters"]["num_updates"]
        assert 0 < saved <= before["learner/update_step"] + 50
        time.sleep(1.0)  # the bridge keeps publishing meanwhile
        n_metrics = len(system.metrics_sub.get("metrics"))
        system.start_learner("--resume", service=service)
        # Training continues from the checkpoint, not from scratch.
        resumed = wait(
            lambda: [
                d.msg.update_step for d in system.metrics_sub.get("metrics")[n_metrics:]
                if d.msg.update_step > 0
            ],
            60, "resumed updates", system,
        )  # fmt: skip
        assert resumed[0] >= saved
        system.wait_metric("weights/version", lambda v: v > before["weights/version"], 30)
        n_done = driver.episodes
        wait(lambda: driver.episodes >= n_done + 2, 60, "more rollouts", system)
        driver.stop()
        driver = None
        total = len(bridge.steps())
        system.wait_metric("learner/env_steps", lambda v: v >= total, 30)
        m = system.metrics()
        assert m["buffer/duplicates"] == 0
        assert system.stop_learner() == 0  # SIGTERM: final checkpoint and replay index
        _assert_replay_holds_exactly(system, [bridge])
    finally:
        if driver is not None:
            driver.stop()
        operator.close()


@pytest.mark.timeout(170)
def test_two_bridges_feed_one_learner_without_mixing(system):
    bridges = [system.start_bridge(r, seed=s, horizon=30) for r, s in (("ra", 0), ("rb", 100))]
    system.start_learner()
    operators = [Operator(b, system.ctx) for b in bridges]
    drivers = []
    try:
        for b in bridges:  # both record at the same time: their streams interleave
            assert b.client.send(StartDemo(operator="expert")).ok
        for b in bridges:
            wait(lambda b=b: b.sub.events("end"), 30, f"{b.robot_id} demo", system)
            assert b.client.send(ResetDone()).ok
        for b in bridges:
            wait(lambda b=b: (b.status().weights_version or 0) >= 1, 60, "weights", system)
        drivers = [RolloutDriver(system, b) for b in bridges]
        wait(lambda: min(d.episodes for d in drivers) >= 2, 60, "rollouts", system)
        for d in drivers:
            d.stop()
        drivers = []
        total = sum(len(b.steps()) for b in bridges)
        system.wait_metric("learner/env_steps", lambda v: v >= total, 30)
        assert system.metrics()["ingest/gaps"] == 0
        assert system.stop_learner() == 0
        _assert_replay_holds_exactly(system, bridges)
        # The learner's own log keeps each robot's episodes apart, steps in order.
        for b in bridges:
            episodes = {s.episode_id for s in b.steps()}
            logged = [p for p in system.run_dir.glob(f"ingest/*/{b.robot_id}/*") if p.is_dir()]
            assert {p.name for p in logged} == episodes
            for path in logged:
                ep = load_episode(path, images=False)
                assert ep.meta.robot_id == b.robot_id
                assert list(ep.steps["step"]) == list(range(len(ep)))
    finally:
        for d in drivers:
            d.stop()
        for op in operators:
            op.close()


@pytest.mark.timeout(120)
def test_startup_from_recorded_demos_publishes_a_loadable_policy(system):
    demos = system.tmp / "demos"
    rc = subprocess.run(
        [sys.executable, "-m", "tandem", "record-demos", "--env", "sim:lift", "--policy",
         "expert", "--episodes", "3", "--out", str(demos), "--cameras", "none"],
        check=False, cwd=REPO, capture_output=True, timeout=90,
    )  # fmt: skip
    assert rc.returncode == 0, rc.stderr.decode()[-3000:]
    system.start_learner("--demos", str(demos))  # no bridge is publishing anything
    system.wait_metric("weights/version", lambda v: v == 1, 60)
    # The snapshot sent with the first bundle may still say "pretraining"; then it waits.
    system.wait_metric("learner/waiting", lambda v: v == 1, 30)
    m = system.metrics()
    assert m["data/demo_episodes"] == 3 and m["buffer/demo"] > 0 and m["weights/version"] == 1
    # A bridge slot that joins now gets the bundle and acts with it.
    slot = LearnerPolicySlot(system.weights).start()
    try:
        wait(lambda: slot.version == 1, 30, "bundle in the slot", system)
        state = load_episode(next(demos.glob("*/*")), images=False).steps["state"][0]
        action, info = slot.act({"state": state})
        assert action.shape == (7,) and np.all(np.abs(action) <= 1)
        assert info.proposal in ("il", "rl") and info.weights_version == 1
    finally:
        slot.close()
