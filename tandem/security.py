"""CurveZMQ on every ZMQ socket, with a ZAP allow-list (docs/security.md).

The keys directory (``security.keys_dir``, default ``<data_dir>/keys``), made by
``tandem keys``; every file 0600, the directories 0700:

* ``tandem.key_secret`` / ``tandem.key``: the deployment's keypair. Every socket that
  binds presents it (CURVE server); every socket that connects expects it.
* ``client.key_secret``: on a machine that only connects, its own keypair (made by
  ``tandem keys --client NAME``); without it a process connects with the deployment's.
* ``authorized/*.key``: the public keys a binding socket accepts, read again at each
  handshake (deleting a file refuses that key from the next connection on).

A process calls ``configure(settings)`` once; every socket site then calls ``bind``
or ``connect`` here instead of the socket's own. With keys, a peer with no keys or
with keys not in ``authorized/`` completes no handshake: it can neither send a
message nor receive one. Without keys, sockets are plaintext as before and a bind
to anything but loopback is refused unless ``security.allow_plaintext`` is set.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils import z85

from tandem.settings import Settings, SettingsError

log = logging.getLogger(__name__)

SERVER = "tandem"  # the deployment keypair: tandem.key_secret / tandem.key
CLIENT = "client"  # a connect-only machine's own keypair: client.key_secret
AUTHORIZED = "authorized"
_ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class SecurityError(SettingsError):
    """Keys are missing, unreadable or too open, or a bind would be unauthenticated
    (``tandem`` exits with a configuration error)."""


@dataclass(frozen=True)
class Keys:
    """Z85-encoded CURVE keys of one process; ``server_secret`` None: it cannot bind."""

    public: bytes
    secret: bytes
    server_public: bytes
    server_secret: bytes | None
    authorized: Path


@dataclass(frozen=True)
class Policy:
    """What ``bind``/``connect`` do: CURVE with ``keys``, else plaintext on loopback."""

    keys: Keys | None = None
    allow_plaintext: bool = False


class _Active:
    policy = Policy()  # the process's, set by ``configure``


# ------------------------------------------------------------------ policy


def configure(settings: Settings) -> Policy:
    """Load the keys named by ``settings`` and make them this process's policy."""
    folder = keys_dir(settings)
    keys = load_keys(folder)
    if keys is None and settings.security.keys_dir is not None:
        raise SecurityError(f"security.keys_dir {str(folder)!r} holds no keys (tandem keys)")
    if keys is None:
        log.info("no ZMQ keys in %s: sockets are plaintext and bind to loopback only", folder)
    else:
        log.debug("ZMQ sockets use CurveZMQ with the keys in %s", folder)
    return set_policy(Policy(keys, settings.security.allow_plaintext))


def keys_dir(settings: Settings) -> Path:
    """Where the keys of ``settings`` live: ``security.keys_dir`` or ``<data_dir>/keys``."""
    return settings.security.keys_dir or settings.data_dir / "keys"


def set_policy(policy: Policy) -> Policy:
    """Make ``policy`` the process's; return it."""
    _Active.policy = policy
    return policy


def current() -> Policy:
    return _Active.policy


@contextlib.contextmanager
def using(policy: Policy) -> Iterator[Policy]:
    """``policy`` inside the block, the previous one after it (tests)."""
    previous = _Active.policy
    set_policy(policy)
    try:
        yield policy
    finally:
        set_policy(previous)


# ----------------------------------------------------------------- sockets


def bind(sock: zmq.Socket, endpoint: str, policy: Policy | None = None) -> str:
    """Bind ``sock`` as a CURVE server (or plaintext on loopback); return the endpoint bound."""
    policy = policy or _Active.policy
    if policy.keys is not None:
        _make_server(sock, policy.keys)
    elif not is_loopback(endpoint) and not policy.allow_plaintext:
        raise SecurityError(
            f"refusing to bind {endpoint} without keys: anyone on the network could command "
            "the robot or read its streams. Run `tandem keys` (and share them, see "
            "docs/security.md), or set security.allow_plaintext = true on an isolated network"
        )
    sock.bind(endpoint)
    return str(sock.getsockopt_string(zmq.LAST_ENDPOINT))


def connect(sock: zmq.Socket, endpoint: str, policy: Policy | None = None) -> None:
    """Connect ``sock`` as a CURVE client when the policy has keys, else in plaintext."""
    policy = policy or _Active.policy
    if policy.keys is not None:
        sock.curve_serverkey = policy.keys.server_public
        sock.curve_publickey = policy.keys.public
        sock.curve_secretkey = policy.keys.secret
    sock.connect(endpoint)


def is_loopback(endpoint: str) -> bool:
    """True for ``ipc://``, ``inproc://`` and ``tcp://`` on a loopback address."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name
        return False


def _make_server(sock: zmq.Socket, keys: Keys) -> None:
    if keys.server_secret is None:
        raise SecurityError(
            f"cannot bind: {SERVER}.key_secret is missing beside {keys.authorized} "
            "(a connect-only key set)"
        )
    sock.curve_server = True
    sock.curve_publickey = keys.server_public
    sock.curve_secretkey = keys.server_secret
    sock.zap_domain = _zap_handler(sock.context).domain_for(keys.authorized).encode()


# --------------------------------------------------------------------- ZAP


class _ZapHandler:
    """Answers the ZAP requests of one libzmq context: a CURVE key is allowed when a
    ``*.key`` file of the socket's ``authorized`` directory holds it (ZAP domain =
    that directory). Ends, closing its socket, when the context is terminated."""

    def __init__(self, context: zmq.Context) -> None:
        self._dirs: dict[str, Path] = {}
        self._sock: zmq.Socket = zmq.Context.shadow(context.underlying).socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(_ZAP_ENDPOINT)
        self.thread = threading.Thread(target=self._run, name="zap", daemon=True)
        self.thread.start()

    def domain_for(self, authorized: Path) -> str:
        domain = "tandem-" + hashlib.sha1(str(authorized.resolve()).encode()).hexdigest()[:16]
        self._dirs[domain] = authorized
        return domain

    def _run(self) -> None:
        """Never ends but with the context: libzmq lets everyone in when no handler is bound."""
        try:
            while True:
                request = self._sock.recv_multipart()
                self._sock.send_multipart(self._answer(request))
        except zmq.ContextTerminated:
            pass
        finally:
            self._sock.close(linger=0)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        try:
            version, request_id, domain, address, _, mechanism, *credentials = request
            allowed = mechanism == b"CURVE" and self._allowed(domain.decode(), credentials[0])
        except Exception:  # a malformed request is refused, and the handler lives on
            log.exception("malformed ZAP request refused")
            version, request_id, address, mechanism, allowed = b"1.0", b"", b"?", b"?", False
        if not allowed:
            log.warning("refused a ZMQ peer at %s (%s)", address.decode(), mechanism.decode())
        status = [b"200", b"OK"] if allowed else [b"400", b"key not authorized"]
        return [version, request_id, *status, b"", b""]

    def _allowed(self, domain: str, public: bytes) -> bool:
        authorized = self._dirs.get(domain)
        if authorized is None:
            return False
        try:
            keys = zmq.auth.load_certificates(authorized)
        except (OSError, ValueError) as exc:
            log.error("cannot read the allow-list %s: %s", authorized, exc)
            return False
        return z85.encode(public) in keys


_handlers: dict[int, _ZapHandler] = {}
_handlers_lock = threading.Lock()


def _zap_handler(context: zmq.Context) -> _ZapHandler:
    """The context's ZAP handler, started with its first CURVE server socket."""
    with _handlers_lock:
        handler = _handlers.get(context.underlying)
        if handler is None or not handler.thread.is_alive():
            handler = _handlers[context.underlying] = _ZapHandler(context)
        return handler


# -------------------------------------------------------------------- keys


def load_keys(keys_dir: Path) -> Keys | None:
    """The keys in ``keys_dir``; None when it holds none. SecurityError when a secret
    file is readable by others or the set is incomplete."""
    server_secret_file = keys_dir / f"{SERVER}.key_secret"
    client_file = keys_dir / f"{CLIENT}.key_secret"
    if not server_secret_file.exists() and not client_file.exists():
        return None
    server_public, server_secret = _read(server_secret_file, keys_dir / f"{SERVER}.key")
    public, secret = _read(client_file, None) if client_file.exists() else (None, None)
    if public is None or secret is None:
        public, secret = server_public, server_secret
    if secret is None:
        raise SecurityError(f"{keys_dir} holds no secret key")
    return Keys(public, secret, server_public, server_secret, keys_dir / AUTHORIZED)


def _read(secret_file: Path, public_file: Path | None) -> tuple[bytes, bytes | None]:
    path = secret_file if secret_file.exists() or public_file is None else public_file
    if path == secret_file and path.stat().st_mode & 0o077:
        raise SecurityError(f"{path} is readable by others: chmod 600 {path}")
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read the key {path}: {exc}") from None


def generate(keys_dir: Path, *, client: str | None = None, force: bool = False) -> Path:
    """Write a new keypair: the deployment's, or with ``client`` a connect-only one
    (``clients/NAME.key_secret``); its public key joins ``authorized/``. Returns the
    secret file; SecurityError when it exists and not ``force``."""
    name = client or SERVER
    folder = keys_dir / "clients" if client else keys_dir
    secret_file, public_file = folder / f"{name}.key_secret", folder / f"{name}.key"
    if secret_file.exists() and not force:
        raise SecurityError(f"{secret_file} exists; --force replaces it (and locks out its peers)")
    for directory in (keys_dir, folder, keys_dir / AUTHORIZED):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    public, secret = zmq.curve_keypair()
    _write_key(secret_file, public, secret)
    _write_key(public_file, public, None)
    _write_key(keys_dir / AUTHORIZED / f"{name}.key", public, None)
    return secret_file


def _write_key(path: Path, public: bytes, secret: bytes | None) -> None:
    """A pyzmq/czmq certificate file, created 0600 (never readable by others)."""
    lines = [f"#   Generated on {datetime.datetime.now():%Y-%m-%d %H:%M} by tandem keys"]
    lines += ["metadata", "curve", f'    public-key = "{public.decode()}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    tmp.replace(path)
