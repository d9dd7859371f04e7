"""Login, logout, who-am-I and operator accounts (``/api/auth``) plus ``GET /login``."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from server.auth import COOKIE_NAME, User, resolve_user, token_from
from server.db.models import Role
from server.db.schemas import OperatorOut
from server.deps import AuthDep, CurrentUser, LoginLimiterDep, OperatorUser, SettingsDep
from server.login_links import is_loopback, issue_login_url, login_base
from server.responses import CONFLICT, LOGIN, OPERATOR, ErrorOut

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/auth", tags=["auth"])
page_router = APIRouter(tags=["auth"])

Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")


class LoginRequest(BaseModel):
    name: str = Name
    password: str = Field(min_length=1, max_length=256)


class ExchangeRequest(BaseModel):
    token: str = Field(min_length=1, max_length=512, description="A one-time login token.")


class UserOut(BaseModel):
    id: int
    name: str
    role: str


class TokenOut(BaseModel):
    token: str = Field(description="Bearer token; also set as the tandem_token cookie.")
    expires_in_s: float
    user: UserOut


class DeviceLinkOut(BaseModel):
    url: str = Field(description="One-time login link: opens the dashboard logged in, once.")
    expires_in_s: float = Field(description="The link stops working after this many seconds.")
    local_only: bool = Field(
        description="The link names a loopback address: only this machine can open it "
        "(set server.public_url or listen on 0.0.0.0 for a headset or tablet)."
    )


class NewOperator(BaseModel):
    name: str = Name
    role: Role = Role.VIEWER
    password: str = Field(min_length=8, max_length=256)


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, name=user.name, role=user.role)


def _issue(store: AuthDep, settings: SettingsDep, user: User, response: Response) -> TokenOut:
    ttl = settings.server.token_ttl_s
    token = store.issue_token(user.id, ttl)
    response.set_cookie(
        COOKIE_NAME, token, max_age=int(ttl), httponly=True, samesite="lax", path="/"
    )
    return TokenOut(token=token, expires_in_s=ttl, user=_user_out(user))


@router.post(
    "/login",
    response_model=TokenOut,
    responses={
        401: {"model": ErrorOut, "description": "Wrong name or password."},
        429: {"model": ErrorOut, "description": "Too many login attempts; see Retry-After."},
    },
)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    *,
    store: AuthDep,
    settings: SettingsDep,
    limiter: LoginLimiterDep,
) -> TokenOut:
    """Log in with name and password; returns a token and sets the cookie.

    Attempts are limited per name and per client address (``server.login_*``).
    """
    address = request.client.host if request.client else "unknown"
    wait_s = limiter.attempt(body.name, address)
    if wait_s:
        log.info("login of %r from %s refused: too many attempts", body.name, address)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many login attempts for this user or address: try again in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    operator = store.verify_password(body.name, body.password)
    if operator is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong name or password")
    user = User(operator.id, operator.name, Role(operator.role).value)
    return _issue(store, settings, user, response)


@router.post("/exchange", response_model=TokenOut, responses=LOGIN)
def exchange(
    body: ExchangeRequest, response: Response, store: AuthDep, settings: SettingsDep
) -> TokenOut:
    """Trade a one-time login token (printed at start-up) for a session token."""
    user = resolve_user(store, body.token)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login token unknown, expired or used")
    return _issue(store, settings, user, response)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=LOGIN)
def logout(request: Request, response: Response, user: CurrentUser, store: AuthDep) -> None:
    """Revoke the token used for this request and clear the cookie."""
    token = token_from(request)
    if token:
        store.revoke_token(token)
    response.delete_cookie(COOKIE_NAME, path="/")


@router.get("/me", response_model=UserOut, responses=LOGIN)
def me(user: CurrentUser) -> UserOut:
    return _user_out(user)


@router.get("/operators", response_model=list[OperatorOut], responses=OPERATOR)
def list_operators(user: OperatorUser, store: AuthDep) -> list[OperatorOut]:
    return store.list_operators()


@router.post(
    "/operators",
    response_model=OperatorOut,
    status_code=status.HTTP_201_CREATED,
    responses=OPERATOR | CONFLICT,
)
def create_operator(body: NewOperator, user: OperatorUser, store: AuthDep) -> OperatorOut:
    """Create an operator or viewer account (operators only; 409 if the name exists)."""
    return store.create_operator(body.name, body.role, body.password)


@router.post("/device-link", response_model=DeviceLinkOut, responses=OPERATOR)
def device_link(
    request: Request, user: OperatorUser, store: AuthDep, settings: SettingsDep
) -> DeviceLinkOut:
    """A fresh one-time login link for the calling operator, to open on a second device
    (headset, tablet): the dashboard shows it as a QR code."""
    ttl = settings.server.login_token_ttl_s
    seen = f"{request.url.scheme}://{request.url.netloc}"
    url = issue_login_url(store, user.id, ttl, login_base(settings.server, seen))
    log.info("device login link issued for %s", user.name)
    return DeviceLinkOut(url=url, expires_in_s=ttl, local_only=is_loopback(url))


@page_router.get(
    "/login",
    response_class=RedirectResponse,
    status_code=status.HTTP_303_SEE_OTHER,
    responses={
        303: {"description": "Logged in: the cookie is set, on to the dashboard."},
        401: {"model": ErrorOut, "description": "The link is unknown, expired or used."},
    },
)
async def login_link(
    request: Request,
    store: AuthDep,
    settings: SettingsDep,
    token: str = Query(min_length=1, max_length=512),
) -> Response:
    """The printed one-time link: exchange ``token``, set the cookie, go to the dashboard."""
    user = await run_in_threadpool(resolve_user, store, token)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login link unknown, expired or used")
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    await run_in_threadpool(_issue, store, settings, user, response)
    return response
