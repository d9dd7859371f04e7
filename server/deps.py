"""Shared state and FastAPI dependencies, as typed ``Annotated`` aliases.

Routers take what they need as parameters (``store: EpisodesDep``,
``user: OperatorUser``); tests override ``get_state`` or build the app with
their own store and bridge link.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, WebSocket, status
from starlette.requests import HTTPConnection

from server.auth import (
    WS_FORBIDDEN,
    WS_UNAUTHENTICATED,
    User,
    resolve_user,
    token_from,
)
from server.bridge_link import BridgeLink
from server.fanout import Hubs
from server.lease import LeaseTable
from server.ratelimit import LoginLimiter
from server.store import ActivityStore, AuthStore, EpisodeStore, EvalStore, MetricsStore, Store
from tandem.settings import Settings


@dataclass
class AppState:
    """Everything the routers share; built by ``create_app``, started in its lifespan."""

    settings: Settings
    store: Store
    link: BridgeLink
    hubs: Hubs
    leases: LeaseTable
    login_limiter: LoginLimiter
    login_url: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def get_state(conn: HTTPConnection) -> AppState:
    state = getattr(conn.app.state, "tandem", None)
    if not isinstance(state, AppState):
        raise RuntimeError("app state is missing: build the app with server.app.create_app")
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_episodes(state: StateDep) -> EpisodeStore:
    return state.store.episodes


def get_auth(state: StateDep) -> AuthStore:
    return state.store.auth


def get_activity(state: StateDep) -> ActivityStore:
    return state.store.activity


def get_metrics_store(state: StateDep) -> MetricsStore:
    return state.store.metrics


def get_evals(state: StateDep) -> EvalStore:
    return state.store.evals


def get_link(state: StateDep) -> BridgeLink:
    return state.link


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_login_limiter(state: StateDep) -> LoginLimiter:
    return state.login_limiter


EpisodesDep = Annotated[EpisodeStore, Depends(get_episodes)]
AuthDep = Annotated[AuthStore, Depends(get_auth)]
ActivityDep = Annotated[ActivityStore, Depends(get_activity)]
MetricsStoreDep = Annotated[MetricsStore, Depends(get_metrics_store)]
EvalsDep = Annotated[EvalStore, Depends(get_evals)]
LinkDep = Annotated[BridgeLink, Depends(get_link)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
LoginLimiterDep = Annotated[LoginLimiter, Depends(get_login_limiter)]


def current_user(conn: HTTPConnection, store: AuthDep) -> User:
    """The logged-in user; 401 without a valid token."""
    user = resolve_user(store, token_from(conn))
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not logged in: send a token (Authorization: Bearer, cookie or ?token=)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_operator(user: CurrentUser) -> User:
    """An operator; 403 for a viewer."""
    if not user.is_operator:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"{user.name} is a viewer; this needs an operator"
        )
    return user


OperatorUser = Annotated[User, Depends(require_operator)]


async def websocket_user(ws: WebSocket, state: AppState) -> User | None:
    """Accept ``ws`` and authenticate it; on failure close it and return None.

    The socket is accepted first so that a browser sees the close code and
    reason (a refused handshake only shows up as 1006). A page of another
    origin is refused (4403) whatever credential it carries, before any
    credential is looked at; then the one token ``token_from`` picks is the
    one resolved (4401 when it is missing or invalid).
    """
    await ws.accept()
    if not same_origin(ws, state.settings.server.public_url):
        reason = "cross-origin WebSocket refused: open the dashboard's own page"
        await ws.close(WS_FORBIDDEN, reason)
        return None
    user = await asyncio.to_thread(resolve_user, state.store.auth, token_from(ws))
    if user is None:
        await ws.close(WS_UNAUTHENTICATED, "not logged in: send a token")
    return user


def same_origin(ws: WebSocket, public_url: str | None = None) -> bool:
    """Whether the handshake comes from our own origin, or from no browser page at all.

    Browsers always send ``Origin`` with a WebSocket handshake, attach our
    cookie to it and apply no CORS, so any page could otherwise open a socket
    as the logged-in user; and a page that passes a token explicitly is still
    another site's page. Non-browser clients (scripts, the operator app) send
    no ``Origin`` and are authenticated by their token alone. Our origin is the
    ``Host`` the client connected to or the host of ``server.public_url``.
    """
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    ours = {ws.headers.get("host", "").lower()}
    if public_url:
        ours.add(urlsplit(public_url).netloc.lower())
    return urlsplit(origin).netloc.lower() in ours - {""}
