"""Who is calling: bearer tokens from a header, a cookie or the query string.

Roles: an *operator* may drive a robot and change data (claim control,
label, discard, delete, export, clear an e-stop); a *viewer* may only watch.
Any logged-in user, viewers included, may trigger an e-stop. Tokens are
issued and resolved by the store (only their hashes are stored).

Token sources, first match wins: ``Authorization: Bearer <token>``, the
``tandem_token`` cookie (set by ``/api/auth/login`` and ``/login``), the
``token`` query parameter (for WebSockets from scripts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import HTTPConnection

log = logging.getLogger(__name__)

COOKIE_NAME = "tandem_token"
MAX_TOKEN_CHARS = 512
# WebSocket close codes (4000-4999 are free for applications): 4401 unauthenticated, 4403 denied.
WS_UNAUTHENTICATED = 4401
WS_FORBIDDEN = 4403


@dataclass(frozen=True)
class User:
    """An authenticated caller."""

    id: int
    name: str
    role: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


class TokenResolver(Protocol):
    def resolve_token(self, token: str) -> Any: ...


def token_from(conn: HTTPConnection) -> str | None:
    """The bearer token a request or WebSocket carries, if any."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = conn.cookies.get(COOKIE_NAME)
    if cookie:
        return cookie
    return conn.query_params.get("token") or None


def resolve_user(store: TokenResolver, token: str | None) -> User | None:
    """The user of ``token``, or None when it is missing, unknown, expired or used up."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    operator = store.resolve_token(token)
    if operator is None:
        return None
    role = getattr(operator.role, "value", operator.role)
    return User(id=int(operator.id), name=str(operator.name), role=str(role))
