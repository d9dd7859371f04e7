"""Issue 17, defects 6-8: cross-site WebSockets, login abuse, tokens in logs (real app and DB)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_helpers import PASSWORD, auth, make_settings
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server.app import create_app
from server.fake_bridge import FakeBridge
from server.store import Store

pytestmark = pytest.mark.timeout(60)

EVIL = "http://evil.example"
LOGIN = "/api/auth/login"


def ws_close_code(client: TestClient, path: str, headers: dict[str, str] | None = None) -> int:
    """The close code the server sends first, or 0 when the socket was served."""
    with client.websocket_connect(path, headers=headers or {}) as ws:
        try:
            ws.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code
        return 0


# ------------------------------------------------------------------ defect 6: Origin check


@pytest.mark.parametrize("path", ["/ws/control", "/ws/telemetry"])
def test_cross_origin_websocket_is_refused_whatever_the_credential(
    client: TestClient, tokens: dict[str, str], path: str
) -> None:
    """A page of another origin is refused even when it names a token of its own."""
    evil = {"origin": EVIL}
    client.cookies.set("tandem_token", tokens["op"])
    # The reported bypass: the bogus ?token= switched the check off, the cookie logged in.
    assert ws_close_code(client, f"{path}?token=x", evil) == 4403
    assert ws_close_code(client, f"{path}?token={tokens['op']}", evil) == 4403
    client.cookies.clear()
    assert ws_close_code(client, f"{path}?token={tokens['op']}", evil) == 4403
    assert ws_close_code(client, path, {**evil, **auth(tokens["op"])}) == 4403
    assert ws_close_code(client, path, {"origin": "null", **auth(tokens["op"])}) == 4403


def test_scripts_without_origin_and_our_own_pages_are_served(
    client: TestClient, tokens: dict[str, str]
) -> None:
    assert ws_close_code(client, f"/ws/telemetry?token={tokens['viewer']}") == 0
    assert ws_close_code(client, "/ws/telemetry?token=x") == 4401
    client.cookies.set("tandem_token", tokens["viewer"])
    assert ws_close_code(client, "/ws/telemetry", {"origin": "http://testserver"}) == 0


def test_the_public_url_counts_as_our_origin(tmp_path: Path, bridge: FakeBridge) -> None:
    settings = make_settings(tmp_path, [bridge], public_url="https://tandem.lab:8443/")
    with TestClient(create_app(settings, record=False)) as client:
        store = client.app.state.tandem.store  # type: ignore[attr-defined]
        token = store.auth.issue_token(store.auth.create_operator("v", "viewer", PASSWORD).id, 60)
        path = f"/ws/telemetry?token={token}"
        assert ws_close_code(client, path, {"origin": "https://tandem.lab:8443"}) == 0
        assert ws_close_code(client, path, {"origin": "https://tandem.lab.evil:8443"}) == 4403


# ------------------------------------------------------------------ defect 7: login


@pytest.fixture
def limited(tmp_path: Path, bridge: FakeBridge) -> FastAPI:
    return create_app(
        make_settings(tmp_path, [bridge], login_attempts_per_user=3, login_attempts_per_address=5),
        record=False,
    )


def from_address(app: FastAPI, host: str) -> TestClient:
    """A client calling from ``host``; only one client per app may run its lifespan (``with``)."""
    return TestClient(app, client=(host, 40000))


def login(client: TestClient, name: str, password: str = "wrong") -> Any:
    return client.post(LOGIN, json={"name": name, "password": password})


def test_login_is_limited_per_user(limited: FastAPI) -> None:
    two = from_address(limited, "10.0.0.2")
    with from_address(limited, "10.0.0.1") as one:
        limited.state.tandem.store.auth.create_operator("carol", "operator", PASSWORD)
        assert [login(one, "carol").status_code for _ in range(3)] == [401] * 3
        refused = login(two, "carol", PASSWORD)  # right password, other address: still refused
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "too many login attempts" in refused.json()["detail"]
        limited.state.tandem.store.auth.create_operator("dave", "viewer", PASSWORD)
        assert login(two, "dave", PASSWORD).status_code == 200  # other users are not affected


def test_login_is_limited_per_address(limited: FastAPI) -> None:
    two = from_address(limited, "10.0.0.2")
    with from_address(limited, "10.0.0.1") as one:
        limited.state.tandem.store.auth.create_operator("carol", "operator", PASSWORD)
        assert [login(one, f"guess{i}").status_code for i in range(5)] == [401] * 5
        refused = login(one, "carol", PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert login(two, "carol", PASSWORD).status_code == 200


class SpyHasher(PasswordHasher):
    """Cheap argon2 that notes, at every hash and verify, whether another writer could write."""

    def __init__(self, db_path: Path) -> None:
        super().__init__(time_cost=2, memory_cost=2048, parallelism=1)
        self.db_path = db_path
        self.calls: list[tuple[str, str, bool]] = []  # (what, hash verified or "", db writable)

    def _db_writable(self) -> bool:
        probe = sqlite3.connect(self.db_path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:  # "database is locked"
            return False
        finally:
            probe.close()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.calls.append(("hash", "", self._db_writable()))
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.calls.append(("verify", str(hash), self._db_writable()))
        return super().verify(hash, password)


@pytest.fixture
def spy(store: Store, settings: Any) -> Iterator[SpyHasher]:
    """Installs a SpyHasher after creating operator carol with the app's own parameters."""
    store.auth.create_operator("carol", "operator", PASSWORD)
    hasher = SpyHasher(settings.data_dir / "tandem.db")
    original = store.auth._hasher
    store.auth._hasher = hasher
    yield hasher
    store.auth._hasher = original


def test_passwords_are_hashed_outside_the_write_lock(
    client: TestClient, store: Store, spy: SpyHasher
) -> None:
    """No argon2 call holds SQLite's write lock: other writers never wait for hashing."""
    assert login(client, "carol").status_code == 401
    assert login(client, "nobody").status_code == 401
    assert login(client, "carol", PASSWORD).status_code == 200  # rehashed: new parameters
    store.auth.create_operator("dave", "viewer", PASSWORD)
    assert all(writable for _, _, writable in spy.calls), spy.calls
    calls = [what for what, _, _ in spy.calls]
    assert calls == ["verify", "verify", "verify", "hash", "hash"]  # rehash, create
    assert login(client, "carol", PASSWORD).status_code == 200  # the rehash was stored


def test_unknown_user_costs_a_verify_like_a_wrong_password(
    client: TestClient, store: Store, spy: SpyHasher
) -> None:
    """Timing does not tell which names exist: an unknown name is verified against a dummy hash."""
    wrong = login(client, "carol")
    unknown = login(client, "nobody")
    assert (wrong.status_code, wrong.json()) == (unknown.status_code, unknown.json())
    verified = [h for what, h, _ in spy.calls if what == "verify"]
    assert len(verified) == 2, "the unknown name must go through argon2 verify too"
    assert verified[1] == store.auth.dummy_hash != verified[0]


# ------------------------------------------------------------------ defect 8: tokens in logs


def test_the_one_time_link_reaches_the_terminal_but_no_log(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    shown: list[str] = []
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings, record=False, on_login_url=shown.append)) as client:
        url = client.app.state.tandem.login_url  # type: ignore[attr-defined]
    token = url.rsplit("token=", 1)[1]
    assert shown == [url] and len(token) > 20
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in logged
    assert "one-time login link issued" in logged
