"""One-time login links: the start-up link, the dashboard's device link, ``tandem login-link``.

A link is ``<base>/login?token=<one-time token>``; ``GET /login`` trades the token for a
session cookie once (``server/routers/auth.py``). The base is ``server.public_url`` when
set, else the address the asking browser used (when another device can reach it), else
``http://HOST:PORT`` with a listen-everywhere host replaced by this machine's name.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from server.store import AuthStore
from tandem.settings import ServerSettings

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
ANY_HOST = frozenset({"0.0.0.0", "::", ""})


def login_base(server: ServerSettings, seen: str | None = None) -> str:
    """Base URL of a login link. ``seen``: the scheme://host:port a browser reached the
    server at; used when no public URL is set and it is not a loopback address."""
    if server.public_url:
        return server.public_url.rstrip("/")
    if seen and not is_loopback(seen):
        return seen.rstrip("/")
    host = socket.gethostname() if server.host in ANY_HOST else server.host
    return f"http://{host}:{server.port}"


def is_loopback(url: str) -> bool:
    """True when ``url`` names this machine only (another device cannot open it)."""
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    return host in LOOPBACK or host.startswith("127.")


def issue_login_url(store: AuthStore, operator_id: int, ttl_s: float, base: str) -> str:
    """A fresh one-time login link for the operator, valid ``ttl_s`` seconds."""
    token = store.issue_token(operator_id, ttl_s, one_time=True)
    return f"{base}/login?token={token}"
