"""Fixtures of the app tests: a fake bridge on loopback ZMQ, settings, the real app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import zmq
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import create_app
from server.fake_bridge import FakeBridge
from server.store import EpisodeStore
from tandem.settings import Settings, load_settings

PASSWORD = "correct horse battery"


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


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


def make_settings(
    tmp_path: Path, bridges: list[FakeBridge], metrics_endpoint: str = "", **server: Any
) -> Settings:
    web = tmp_path / "web"
    web.mkdir(exist_ok=True)
    (web / "index.html").write_text("<!doctype html><title>Tandem</title>")
    return load_settings(
        data_dir=tmp_path / "data",
        server={
            "bridges": [b.pub_endpoint for b in bridges],
            "bridge_cmd_endpoints": [b.cmd_endpoint for b in bridges],
            "learner_metrics_endpoint": metrics_endpoint,
            "web_dir": str(web),
            "command_timeout_s": 1.0,
            "metrics_batch_s": 0.2,
            **server,
        },
        teleop={"lease_timeout_s": 5.0},
    )


@pytest.fixture
def settings(tmp_path: Path, bridge: FakeBridge, learner_pub: tuple[zmq.Socket, str]) -> Settings:
    return make_settings(tmp_path, [bridge], learner_pub[1])


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def store(app: FastAPI) -> EpisodeStore:
    return app.state.tandem.store


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _token(store: EpisodeStore, name: str, role: str) -> str:
    operator = store.get_operator(name) or store.create_operator(name, role, PASSWORD)
    return store.issue_token(operator.id, 3600)


@pytest.fixture
def tokens(client: TestClient, store: EpisodeStore) -> dict[str, str]:
    """Bearer tokens of two operators (op, op2) and a viewer."""
    return {
        "op": _token(store, "op", "operator"),
        "op2": _token(store, "op2", "operator"),
        "viewer": _token(store, "viewer", "viewer"),
    }


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class LiveServer:
    """The app under real uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 10.0, "uvicorn to start")
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        self.base = f"127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10.0)
