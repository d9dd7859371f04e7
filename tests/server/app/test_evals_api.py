"""Evaluation batches and honest results through the real app, a real bridge (mock robot,
ticking in a thread) and the recorder, over loopback ZMQ and a real SQLite store.

* ``POST /api/evals`` runs N evaluation episodes: the policy is asked for deterministic
  actions (explore=False) and reset at every start, the mock robot resets itself between
  episodes, and ``/api/evals`` lists the batch with its weights version and the learner's
  env steps (from the metrics the learner published).
* Over ``/ws/control``: a take-over in an evaluation episode stores it as a failure; a
  rollout a human helped finish is stored as an assisted success, never an autonomous one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
from app_helpers import auth, wait_until
from fastapi.testclient import TestClient

from robot_bridge.bridge import Bridge
from robot_bridge.factory import make_backend
from robot_bridge.policy import PolicySlot
from server.app import create_app
from tandem import wire
from tandem.messages import LearnerMetrics
from tandem.settings import BridgeSettings, load_settings
from tests.polling import free_port
from tests.robot_bridge.conftest import RecordingPolicy

pytestmark = [pytest.mark.timeout(120), pytest.mark.e2e]
VERSION = 5
ENV_STEPS = 1500
RB = 5


@dataclass
class Live:
    client: TestClient
    token: str
    bridge: Bridge
    metrics: zmq.Socket

    @property
    def h(self) -> dict[str, str]:
        return auth(self.token)

    def use(self, policy: RecordingPolicy) -> RecordingPolicy:
        self.bridge.policy.load(policy, version=VERSION)
        return policy

    def get(self, path: str) -> Any:
        response = self.client.get(path, headers=self.h)
        assert response.status_code == 200, response.text
        return response.json()

    def publish_metrics_until_stored(self) -> None:
        store = self.client.app.state.tandem.store  # type: ignore[attr-defined]
        metrics: dict[str, float | None] = {
            "weights/version": VERSION,
            "learner/env_steps": ENV_STEPS,
        }
        msg = LearnerMetrics(run_id="run-x", update_step=10, env_steps=ENV_STEPS, metrics=metrics)

        def stored() -> bool:
            self.metrics.send_multipart(wire.encode(msg))
            return bool(store.metrics.metrics_history("run-x", ["learner/env_steps"]))

        wait_until(stored, 15, "the learner's metrics in the store")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    ctx = zmq.Context()
    bs = BridgeSettings(
        robot="mock", pub_endpoint=f"tcp://127.0.0.1:{free_port()}",
        cmd_endpoint=f"tcp://127.0.0.1:{free_port()}", rate_hz=50.0, status_period_s=0.1,
        seed=0, horizon=400, watchdog_s=0.5,
    )  # fmt: skip
    bridge = Bridge(bs, make_backend("mock", bs), policy=PolicySlot(), context=ctx)
    bridge.start()
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    metrics = ctx.socket(zmq.PUB)
    metrics.setsockopt(zmq.LINGER, 0)
    metrics_ep = f"tcp://127.0.0.1:{metrics.bind_to_random_port('tcp://127.0.0.1')}"
    settings = load_settings(
        data_dir=tmp_path / "data",
        server={
            "bridges": [bs.pub_endpoint], "bridge_cmd_endpoints": [bs.cmd_endpoint],
            "learner_metrics_endpoint": metrics_ep, "web_dir": str(tmp_path / "none"),
            "command_timeout_s": 3.0, "metrics_batch_s": 0.2,
        },
    )  # fmt: skip
    try:
        with TestClient(create_app(settings)) as client:
            state = client.app.state.tandem  # type: ignore[attr-defined]
            op = state.store.auth.create_operator("ann", "operator", "pw-pw-pw-pw")
            token = state.store.auth.issue_token(op.id, 600)
            wait_until(state.link.robots, 30, "the bridge's first status")
            time.sleep(0.5)  # the recorder's SUB joins alongside the link's
            yield Live(client, token, bridge, metrics)
    finally:
        stop.set()
        thread.join(5)
        bridge.close()
        ctx.destroy(linger=0)


def test_eval_batch_over_rest_is_deterministic_and_stored_with_weights(live: Live) -> None:
    policy = live.use(RecordingPolicy(live.bridge.backend.expert()))
    live.publish_metrics_until_stored()
    bad = live.client.post("/api/evals", json={"episodes": 0}, headers=live.h)
    assert bad.status_code == 422
    unknown = live.client.post(
        "/api/evals", json={"episodes": 2, "robot_id": "nope"}, headers=live.h
    )
    assert unknown.status_code == 404 and "unknown robot" in unknown.text
    started = live.client.post("/api/evals", json={"episodes": 3}, headers=live.h)
    assert started.status_code == 200, started.text
    assert started.json()["ok"] and started.json()["mode"] == "rollout"

    def batch_done() -> Any:
        batches = live.get("/api/evals")
        return batches and batches[-1]["episodes"] == 3 and batches[-1]

    batch = wait_until(batch_done, 60, "3 stored evaluation episodes")
    assert batch["successes"] == 3 and batch["success_rate"] == 1.0
    assert batch["weights_version"] == VERSION and batch["env_steps"] == ENV_STEPS
    page = live.get(f"/api/episodes?eval_batch={batch['batch']}")
    assert page["total"] == 3
    for ep in page["items"]:
        assert ep["kind"] == "evaluation" and ep["weights_version"] == VERSION
        assert ep["result"] == "autonomous_success" and ep["autonomous_success"] is True
    assert sorted(ep["eval_index"] for ep in page["items"]) == [1, 2, 3]
    # Deterministic acting reached the policy, reset at each episode; no reset_done was sent.
    assert policy.explore and not any(policy.explore)
    assert policy.resets == 3
    robot = live.get("/api/robots")[0]["status"]
    assert robot["eval"]["done"] == 3 and not robot["eval"]["running"]
    stop = live.client.post("/api/evals/stop", json={}, headers=live.h)
    assert stop.status_code == 409 and "no evaluation batch" in stop.text


def send(ws: Any, seq: int, msg_type: str, **fields: Any) -> None:
    ws.send_text(json.dumps({"v": 1, "seq": seq, "type": msg_type, **fields}))


def ack(ws: Any) -> dict[str, Any]:
    while (msg := ws.receive_json())["type"] != "ack":
        pass
    return msg


def push_stick(ws: Any, seq: int) -> None:
    buttons = [{"pressed": i == RB, "value": float(i == RB)} for i in range(17)]
    send(ws, seq, "gamepad", axes=[0.5, 0.0, 0.0, 0.0], buttons=buttons, t_input=time.time() * 1e3)


def stored(live: Live, kind: str) -> Any:
    page = live.get(f"/api/episodes?kind={kind}")
    done = [e for e in page["items"] if not e["recording"]]
    return done[0] if done else None


def test_take_over_fails_an_eval_and_an_assisted_rollout_is_not_autonomous(live: Live) -> None:
    policy = live.use(RecordingPolicy(None))  # never succeeds by itself
    other = live.client.app.state.tandem.store.auth.create_operator(
        "bob", "operator", "pw-pw-pw-pw"
    )  # type: ignore[attr-defined]
    bob = auth(live.client.app.state.tandem.store.auth.issue_token(other.id, 600))  # type: ignore[attr-defined]
    with live.client.websocket_connect(f"/ws/control?token={live.token}") as ws:
        send(ws, 1, "claim")
        send(ws, 2, "command", name="start_eval", episodes=2)
        assert ack(ws)["mode"] == "rollout"
        # Bob may not start or stop a batch over HTTP while Ann holds the robot.
        refused = live.client.post("/api/evals/stop", json={}, headers=bob)
        assert refused.status_code == 409 and "ann holds the control lease" in refused.text
        wait_until(lambda: len(policy.explore) >= 5, 10, "policy steps")
        send(ws, 3, "command", name="take_over", reason="about to knock the cube off")
        took = ack(ws)
        assert took["ok"] and took["mode"] == "await_reset", took
        # A rollout the operator helps finish.
        send(ws, 4, "command", name="start_rollout")
        assert ack(ws)["mode"] == "rollout"
        wait_until(lambda: len(policy.explore) >= 15, 10, "rollout policy steps")
        send(ws, 5, "command", name="take_over")
        assert ack(ws)["mode"] == "intervention"
        for i in range(15):
            push_stick(ws, 10 + i)
            time.sleep(0.04)
        send(ws, 40, "command", name="success", reason="I finished it")
        assert ack(ws)["ok"]

    evaluation = wait_until(lambda: stored(live, "evaluation"), 20, "the stored eval episode")
    assert (evaluation["result"], evaluation["end_reason"]) == ("failure", "take_over")
    assert evaluation["intervention_steps"] == 0 and not evaluation["autonomous_success"]
    rollout = wait_until(lambda: stored(live, "rollout"), 20, "the stored rollout")
    assert rollout["outcome"] == "success" and rollout["intervention_steps"] > 0
    assert rollout["result"] == "assisted_success" and rollout["autonomous_success"] is False
    assert live.get("/api/episodes?result=autonomous_success")["total"] == 0
    (batch,) = live.get("/api/evals")
    assert (batch["episodes"], batch["successes"], batch["success_rate"]) == (1, 0, 0.0)
    # The training rollout explored; the evaluation episode did not.
    explored = set(policy.explore)
    assert explored == {False, True}
