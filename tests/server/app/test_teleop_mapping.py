"""``GET /api/teleop/mapping``: the browser's gamepad mapping comes from the server's settings."""

from __future__ import annotations

from app_helpers import auth
from fastapi.testclient import TestClient

from server.app import create_app
from tandem.settings import Settings


def test_mapping_follows_the_settings(settings: Settings) -> None:
    settings.teleop = settings.teleop.model_copy(
        update={"deadman_button": 4, "gripper_button": 2, "keyboard_deadman_key": "ShiftLeft",
                "unsure_threshold": 0.4, "unsure_window": 3}
    )  # fmt: skip
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/teleop/mapping").status_code == 401
        _, once = client.app.state.tandem.store.auth.ensure_default_operator()  # type: ignore[attr-defined]
        token = client.post("/api/auth/exchange", json={"token": once}).json()["token"]
        body = client.get("/api/teleop/mapping", headers=auth(token)).json()
    assert body == {
        "deadman_button": 4,
        "gripper_button": 2,
        "gripper_mode": "toggle",
        "keyboard_deadman_key": "ShiftLeft",
        "xr_hand": "right",
        "unsure_threshold": 0.4,
        "unsure_window": 3,
    }
