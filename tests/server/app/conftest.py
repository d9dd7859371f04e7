"""Fixtures of the app tests: a fake bridge on loopback ZMQ, settings, the real app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from app_helpers import PASSWORD, LiveServer, auth, make_settings, wait_until  # noqa: F401
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import create_app
from server.fake_bridge import FakeBridge
from server.store import Store
from tandem.settings import Settings


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2, with cheap parameters: the default costs ~0.1-0.5 s per hash here."""
    monkeypatch.setattr(
        "server.store.auth.PasswordHasher",
        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    fake = FakeBridge("robot0").start()
    yield fake
    fake.stop()


@pytest.fixture
def learner_pub() -> Iterator[tuple[zmq.Socket, str]]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    ctx.destroy(linger=0)


@pytest.fixture
def settings(tmp_path: Path, bridge: FakeBridge, learner_pub: tuple[zmq.Socket, str]) -> Settings:
    return make_settings(tmp_path, [bridge], learner_pub[1])


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def store(app: FastAPI) -> Store:
    return app.state.tandem.store


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _token(store: Store, name: str, role: str) -> str:
    operator = store.auth.get_operator(name) or store.auth.create_operator(name, role, PASSWORD)
    return store.auth.issue_token(operator.id, 3600)


@pytest.fixture
def tokens(client: TestClient, store: Store) -> dict[str, str]:
    """Bearer tokens of two operators (op, op2) and a viewer."""
    return {
        "op": _token(store, "op", "operator"),
        "op2": _token(store, "op2", "operator"),
        "viewer": _token(store, "viewer", "viewer"),
    }
