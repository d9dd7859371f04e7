"""``GET /api/health``: what a probe sees of the database, recorder, bridges and learner."""

from __future__ import annotations

import time

import pytest
import zmq
from app_helpers import wait_until
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from server.fake_bridge import FakeBridge
from tandem import wire
from tandem.messages import LearnerMetrics

pytestmark = pytest.mark.timeout(60)


def test_health_needs_no_login_and_reports_each_part(
    client: TestClient, bridge: FakeBridge, learner_pub: tuple[zmq.Socket, str]
) -> None:
    first = client.get("/api/health")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["ok"] and body["database"]["ok"] and body["recorder"]["ok"]
    assert body["database"]["detail"] == "sqlite"
    assert body["learner"] == {"ok": False, "detail": "no learner metrics received yet"}

    sock, _ = learner_pub

    def live() -> bool:
        bridge.publish_status()
        wire.send(sock, LearnerMetrics(run_id="r", update_step=1, env_steps=1, metrics={}))
        got = client.get("/api/health").json()
        return got["bridges"][0]["ok"] and got["learner"]["ok"]

    wait_until(live, what="the bridge's status and the learner's metrics")
    [one] = client.get("/api/health").json()["bridges"]
    assert one["robot_id"] == "robot0" and one["status_age_s"] < 3.0
    assert one["endpoint"] == bridge.pub_endpoint


def test_a_silent_bridge_is_reported_stale_but_the_server_stays_healthy(
    client: TestClient, bridge: FakeBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = client.app.state.tandem.link  # type: ignore[attr-defined]
    wait_until(lambda: bridge.publish_status() or link.robots(), what="a status")
    time.sleep(0.3)  # statuses still in flight arrive before the clock jumps
    real = time.monotonic
    monkeypatch.setattr("server.bridge_registry.time.monotonic", lambda: real() + 60.0)
    response = client.get("/api/health")
    assert response.status_code == 200
    [one] = response.json()["bridges"]
    assert not one["ok"] and "(stale)" in one["detail"]


def test_a_dead_recorder_or_database_answers_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = client.app.state.tandem  # type: ignore[attr-defined]
    state.extra["recorder"].stop()
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["recorder"] == {"ok": False, "detail": "the recorder thread has stopped"}

    def unreachable() -> None:
        raise OperationalError("SELECT 1", {}, OSError("disk gone"))

    monkeypatch.setattr(state.store, "session", unreachable)
    broken = client.get("/api/health").json()
    assert not broken["ok"] and not broken["database"]["ok"]
    assert "disk gone" in broken["database"]["detail"]
