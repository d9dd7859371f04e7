"""The scripted operator logs in over HTTP with the credentials the server provisions.

``tandem demo-operator`` never opens the database: the server writes the
account's name and password to a 0600 file under the data directory at start-up.
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from app_helpers import LiveServer, auth, make_settings
from fastapi.testclient import TestClient

from server.app import create_app
from server.fake_bridge import FakeBridge
from tandem.cli.commands.operator import OPERATOR_NAME, local_token
from tandem.cli.operator.link import LinkError
from tandem.credentials import credentials_file, read_credentials, session_file
from tandem.settings import Settings


def test_operator_logs_in_with_the_provisioned_credentials(settings: Settings) -> None:
    path = credentials_file(settings.data_dir)
    with LiveServer(create_app(settings)) as live:
        token = local_token(settings, f"http://{live.base}")
        me = httpx.get(f"http://{live.base}/api/auth/me", headers=auth(token)).json()
    assert (me["name"], me["role"]) == (OPERATOR_NAME, "operator")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_started_many_times_a_minute_it_reuses_its_session(settings: Settings) -> None:
    """More starts than the login rate limit allows in a minute (5 per user): the kept
    session serves them all; once it is logged out, the next start logs in again."""
    with LiveServer(create_app(settings)) as live:
        url = f"http://{live.base}"
        tokens = {local_token(settings, url) for _ in range(8)}
        assert len(tokens) == 1
        kept = session_file(settings.data_dir)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        (token,) = tokens
        assert httpx.post(f"{url}/api/auth/logout", headers=auth(token)).status_code == 204
        fresh = local_token(settings, url)
        me = httpx.get(f"{url}/api/auth/me", headers=auth(fresh))
    assert fresh != token and me.json()["name"] == OPERATOR_NAME


def test_a_restart_keeps_the_password_and_a_lost_file_gets_a_new_one(settings: Settings) -> None:
    path = credentials_file(settings.data_dir)
    with TestClient(create_app(settings)):
        first = read_credentials(path)
    with TestClient(create_app(settings)) as client:
        assert read_credentials(path) == first
        path.write_text("not json")  # damaged: replaced at the next start
    with TestClient(create_app(settings)) as client:
        fresh = read_credentials(path)
        assert fresh is not None and first is not None and fresh.password != first.password
        ok = client.post("/api/auth/login", json=fresh.model_dump())
        stale = client.post("/api/auth/login", json=first.model_dump())
    assert ok.status_code == 200 and stale.status_code == 401


def test_no_credentials_when_turned_off(tmp_path: Path, bridge: FakeBridge) -> None:
    settings = make_settings(tmp_path, [bridge], scripted_operator=False)
    with TestClient(create_app(settings)) as client:
        names = {
            o["name"] for o in client.get("/api/auth/operators", headers=_admin(client)).json()
        }
    assert OPERATOR_NAME not in names
    assert not credentials_file(settings.data_dir).exists()
    with pytest.raises(ValueError, match="no scripted-operator credentials"):
        local_token(settings, "http://127.0.0.1:9")


def test_wrong_server_refuses_the_login(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings)):
        pass
    (tmp_path / "other").mkdir()
    other = make_settings(tmp_path / "other", [], scripted_operator=False)
    with LiveServer(create_app(other)) as live, pytest.raises(LinkError, match="HTTP 401"):
        local_token(settings, f"http://{live.base}")


def _admin(client: TestClient) -> dict[str, str]:
    _, token = client.app.state.tandem.store.auth.ensure_default_operator()  # type: ignore[attr-defined]
    return auth(client.post("/api/auth/exchange", json={"token": token}).json()["token"])
