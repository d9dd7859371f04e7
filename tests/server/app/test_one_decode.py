"""The server decodes each bridge step once, however many consumers it has.

The real app (recorder on, a browser on ``/ws/telemetry``) against the fake bridge's
real PUB socket on loopback. The codec's inner ``_decode`` is wrapped to count the
decodes of ``step`` messages anywhere in this process: ``wire.decode`` looks it up at
each call, so even a module that imported ``decode`` by name is counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from app_helpers import wait_until
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from server.fake_bridge import FakeBridge
from server.store import Store
from tandem import wire

STEPS = 12


def next_of(ws: WebSocketTestSession, kind: str) -> dict[str, Any]:
    while True:
        msg = json.loads(ws.receive_text())
        if msg["type"] == kind:
            return msg


def test_each_step_is_decoded_once_for_the_recorder_and_the_browsers(
    client: TestClient,
    tokens: dict[str, str],
    bridge: FakeBridge,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decodes: list[int] = []
    real_decode = wire._decode

    def counting_decode(parts: Sequence[wire.Buffer], *args: Any) -> wire.Decoded:
        decoded = real_decode(parts, *args)
        if decoded.topic == "step":
            decodes.append(decoded.msg.seq)
        return decoded

    monkeypatch.setattr(wire, "_decode", counting_decode)
    state = client.app.state.tandem  # type: ignore[attr-defined]
    wait_until(lambda: bridge.publish_status() or state.link.robots(), what="robot id")
    images = {"front": np.full((32, 32, 3), 7, np.uint8), "wrist": np.zeros((32, 32, 3), np.uint8)}
    with client.websocket_connect(f"/ws/telemetry?token={tokens['viewer']}") as ws:
        wait_until(state.hubs.telemetry.mailboxes, what="telemetry subscription")
        bridge.publish_episode("once", "start")
        for step in range(STEPS):
            bridge.publish_step("once", step, images=images)
        bridge.publish_episode("once", "end", reason="success", num_steps=STEPS)
        rollouts = [next_of(ws, "rollout")["step"] for _ in range(STEPS)]
        summary = next_of(ws, "episode_summary")
    assert rollouts == list(range(STEPS)) and summary["length"] == STEPS
    eps = store.episodes
    wait_until(lambda: eps.has_episode("once") and eps.get_episode("once").length == STEPS,
               what="the recorder to store the episode")  # fmt: skip
    assert state.extra["recorder"].stats().steps == STEPS
    assert len(decodes) == STEPS, f"{len(decodes)} step decodes for {STEPS} steps"
    assert len(set(decodes)) == STEPS
