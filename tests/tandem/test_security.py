"""tandem.security and ``tandem keys``: 0600 keys, the allow-list, and no plaintext bind
beyond loopback unless the operator opts out (issue 17, defect 1)."""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

import pytest
import zmq

from tandem import security
from tandem.cli.main import main
from tandem.settings import load_settings
from tests.security_keys import BAD_PEERS, bad_peers, deployment

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tandem_keys_writes_0600_keys_into_the_data_dir_and_never_overwrites(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("TANDEM_DATA_DIR", str(tmp_path))
    assert main(["keys"]) == 0
    folder = tmp_path / "keys"
    secret = (folder / "tandem.key_secret").read_text()
    assert _mode(folder) == 0o700 and _mode(folder / "authorized") == 0o700
    for path in [folder / "tandem.key_secret", folder / "tandem.key", *folder.glob("*/*")]:
        assert _mode(path) == 0o600, path
    assert main(["keys"]) == 1 and "--force" in capsys.readouterr().err
    assert (folder / "tandem.key_secret").read_text() == secret
    assert main(["keys", "--if-missing"]) == 0
    assert (folder / "tandem.key_secret").read_text() == secret
    assert main(["keys", "--force"]) == 0
    assert (folder / "tandem.key_secret").read_text() != secret
    keys = security.load_keys(folder)
    assert keys is not None and keys.public == keys.server_public
    assert keys.server_secret is not None and keys.authorized == folder / "authorized"


def test_binding_beyond_loopback_without_keys_is_refused_unless_opted_out(ctx) -> None:
    for endpoint in ("tcp://0.0.0.0:*", "tcp://*:*"):
        sock = ctx.socket(zmq.ROUTER)
        with pytest.raises(security.SecurityError, match=r"refusing to bind .* without keys"):
            security.bind(sock, endpoint, security.Policy())
        sock.close(linger=0)
    assert security.bind(ctx.socket(zmq.PUB), "tcp://127.0.0.1:*", security.Policy())
    opted_out = security.Policy(allow_plaintext=True)
    assert security.bind(ctx.socket(zmq.PUB), "tcp://0.0.0.0:*", opted_out)


def test_binding_beyond_loopback_with_keys_is_allowed(tmp_path, ctx) -> None:
    keys = deployment(tmp_path / "keys")
    assert security.bind(ctx.socket(zmq.PUB), "tcp://0.0.0.0:*", security.Policy(keys))


def test_the_bridge_refuses_an_unauthenticated_public_command_socket(ctx) -> None:
    """The multi-machine setting (cmd_endpoint on 0.0.0.0) without keys: refused, named."""
    from robot_bridge.command_server import CommandServer

    with security.using(security.Policy()), pytest.raises(security.SecurityError, match="keys"):
        CommandServer("tcp://0.0.0.0:*", ctx)


def test_allow_plaintext_is_a_validated_setting(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TANDEM_SECURITY__ALLOW_PLAINTEXT", "true")
    assert load_settings(None, data_dir=tmp_path).security.allow_plaintext
    monkeypatch.setenv("TANDEM_SECURITY__ALLOW_PLAINTEXT", "maybe")
    with pytest.raises(ValueError, match=r"security\.allow_plaintext"):
        load_settings(None, data_dir=tmp_path)


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5555", True), ("tcp://127.0.0.2:1", True), ("tcp://[::1]:5", True),
        ("tcp://localhost:5", True), ("ipc:///tmp/x", True), ("inproc://x", True),
        ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://eth0:5", False),
        ("tcp://192.168.1.4:5", False), ("tcp://robot-pc:5", False), ("udp://127.0.0.1:5", False),
    ],
)  # fmt: skip
def test_loopback_endpoints(endpoint, loopback) -> None:
    assert security.is_loopback(endpoint) is loopback


def test_configure_uses_the_data_dir_keys_and_a_named_dir_must_hold_some(tmp_path) -> None:
    with security.using(security.Policy()):
        assert security.configure(load_settings(None, data_dir=tmp_path)).keys is None
        deployment(tmp_path / "keys")
        assert security.configure(load_settings(None, data_dir=tmp_path)).keys is not None
        assert security.current().keys is not None
        empty = load_settings(None, data_dir=tmp_path, security={"keys_dir": tmp_path / "none"})
        with pytest.raises(security.SecurityError, match="holds no keys"):
            security.configure(empty)


def test_a_secret_key_readable_by_others_is_refused(tmp_path) -> None:
    deployment(tmp_path / "keys")
    (tmp_path / "keys" / "tandem.key_secret").chmod(0o644)
    with pytest.raises(security.SecurityError, match="chmod 600"):
        security.load_keys(tmp_path / "keys")


def _round_trip(ctx, server: security.Policy, client: security.Policy) -> bool:
    """Whether a DEALER with ``client`` keys reaches a ROUTER bound with ``server`` keys."""
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    endpoint = security.bind(router, "tcp://127.0.0.1:*", server)
    security.connect(dealer, endpoint, client)
    with contextlib.suppress(zmq.Again):  # no connection yet (or ever): nowhere to queue
        dealer.send(b"hello", zmq.NOBLOCK)
    got = bool(router.poll(500))
    router.close(linger=0)
    dealer.close()
    return got


@pytest.mark.parametrize("peer", BAD_PEERS)
def test_only_keys_on_the_allow_list_get_through(peer, tmp_path, ctx) -> None:
    keys = deployment(tmp_path / "keys")
    good = security.Policy(keys)
    assert _round_trip(ctx, good, good)
    assert not _round_trip(ctx, good, bad_peers(keys, tmp_path)[peer])


def test_a_client_key_works_until_it_is_removed_from_the_allow_list(tmp_path, ctx) -> None:
    folder = tmp_path / "keys"
    keys = deployment(folder)
    secret = security.generate(folder, client="laptop")
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    (laptop / "tandem.key").write_bytes((folder / "tandem.key").read_bytes())
    (laptop / "client.key_secret").write_bytes(secret.read_bytes())
    (laptop / "client.key_secret").chmod(0o600)
    client = security.load_keys(laptop)
    assert client is not None and client.server_secret is None and client.public != keys.public
    assert _round_trip(ctx, security.Policy(keys), security.Policy(client))
    with pytest.raises(security.SecurityError, match="cannot bind"):
        security.bind(ctx.socket(zmq.PUB), "tcp://127.0.0.1:*", security.Policy(client))
    (folder / "authorized" / "laptop.key").unlink()  # revoked: refused from the next handshake
    assert not _round_trip(ctx, security.Policy(keys), security.Policy(client))


def test_tandem_up_makes_keys_once(tmp_path) -> None:
    from tandem.cli.commands.up import ensure_keys

    settings = load_settings(None, data_dir=tmp_path)
    ensure_keys(settings)
    secret = (tmp_path / "keys" / "tandem.key_secret").read_bytes()
    ensure_keys(settings)
    assert (tmp_path / "keys" / "tandem.key_secret").read_bytes() == secret
