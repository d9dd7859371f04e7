"""The FastAPI application: ``create_app(settings)`` builds it, its lifespan runs it.

Start-up (in order): open the episode store (migrations), attach the recorder
to the bridge link's streams (it first reconciles crashed episodes), start the
bridge link (commands, the one subscription to the bridges that feeds both the
recorder and the browsers, learner metrics), make sure an operator exists and hand
a one-time login URL to ``on_login_url`` (the log gets it with the token
redacted). Shutdown reverses it. Routes: REST under ``/api``,
WebSockets under ``/ws``, ``/login``, the OpenAPI schema at ``/openapi.json``
(docs at ``/docs``), and ``web/`` as static files mounted last so that it
never shadows a route.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

import server
import tandem
from server.bridge_link import BridgeError, BridgeLink, finite_json
from server.deps import AppState
from server.fanout import Hubs
from server.lease import LeaseTable
from server.login_links import login_base
from server.ratelimit import LoginLimiter
from server.routers import (
    auth,
    camera,
    control,
    episodes,
    estop,
    evals,
    export,
    health,
    metrics,
    processes,
    robots,
    telemetry,
    teleop,
)
from server.scripted_operator import provision_scripted_operator
from server.store import ActivityStore, AuthStore, Conflict, MetricsStore, NotFound, Store
from tandem.logs import redact_tokens
from tandem.settings import Settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(server.__file__).resolve().parent.parent


class NoCacheStaticFiles(StaticFiles):
    """Static files with ``Cache-Control: no-cache`` (headsets cache pages aggressively)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    bridge_link: BridgeLink | None = None,
    record: bool = True,
    on_login_url: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app. ``store``/``bridge_link`` default to ones made from ``settings``
    (a given store is not closed at shutdown); ``record=False`` runs without the recorder."""
    own_store = store is None
    store = store if store is not None else _make_store(settings)
    hubs = Hubs() if bridge_link is None else bridge_link.hubs
    link = bridge_link or BridgeLink(settings.server, hubs)
    state = AppState(
        settings=settings,
        store=store,
        link=link,
        hubs=hubs,
        leases=LeaseTable(settings.teleop.lease_timeout_s),
        login_limiter=LoginLimiter(
            settings.server.login_attempts_per_user,
            settings.server.login_attempts_per_address,
            settings.server.login_window_s,
        ),
    )
    link.set_metrics_sink(_metrics_sink(store.metrics))
    link.set_reset_sink(_reset_sink(store.activity))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        recorder = _start_recorder(settings, store, link) if record else None
        state.extra["recorder"] = recorder
        await link.start()
        state.login_url = await asyncio.to_thread(_login_url, settings, store.auth)
        auth_store = store.auth
        await asyncio.to_thread(lambda: auth_store.dummy_hash)  # the first unknown name: no slower
        await asyncio.to_thread(provision_scripted_operator, settings, auth_store)
        # The token itself never goes to a log: the link reaches the person who
        # started the server through ``on_login_url`` (the terminal).
        log.warning("one-time login link issued: %s", redact_tokens(state.login_url))
        if on_login_url is not None:
            on_login_url(state.login_url)
        try:
            yield
        finally:
            hubs.close_all()
            await link.stop()
            if recorder is not None:
                await asyncio.to_thread(recorder.stop)
            if own_store:
                store.close()  # connections only; a restarted lifespan reconnects
            log.info("server stopped")

    app = FastAPI(
        title="Tandem",
        version=tandem.__version__,
        description="Real-robot learning service: episodes, teleoperation relay, telemetry.",
        lifespan=lifespan,
    )
    app.state.tandem = state
    _add_error_handlers(app)
    routers = (
        auth,
        episodes,
        export,
        estop,
        evals,
        robots,
        health,
        processes,
        metrics,
        control,
        telemetry,
        camera,
        teleop,
    )
    for module in routers:
        app.include_router(module.router)
    app.include_router(auth.page_router)
    _mount_web(app, settings)  # last: a mount at / must never shadow a route
    return app


def print_login_url(url: str) -> None:
    """Show the one-time login link on the terminal (stdout, never a log file)."""
    sys.stdout.write(f"Tandem server: log in at {url}\n")
    sys.stdout.flush()


def _make_store(settings: Settings) -> Store:
    return Store(
        settings.server.database_url,
        settings.data_dir,
        metrics_interval_s=settings.server.metrics_interval_s,
    )


def _start_recorder(settings: Settings, store: Store, link: BridgeLink) -> Any:
    """A recorder fed by the link's bridge streams (each step is decoded once for both)."""
    from server.recorder import Recorder

    if not link.streams.endpoints:
        log.warning("no bridges configured: not recording")
        return None
    recorder = Recorder(store.episodes, link.streams, flush_every_s=settings.server.flush_every_s)
    report = recorder.start()
    if report.recovered:
        log.warning(
            "recovered %d interrupted episode(s): %s", len(report.recovered), report.recovered
        )
    return recorder


def _metrics_sink(store: MetricsStore) -> Callable[[list[Any]], Any]:
    def write(batch: list[Any]) -> None:
        for msg in batch:
            store.record_metrics(msg.run_id, msg.t_wall, msg.metrics)

    async def sink(batch: list[Any]) -> None:
        await asyncio.to_thread(write, batch)

    return sink


def _reset_sink(store: ActivityStore) -> Callable[[str, float, float], Any]:
    async def sink(robot_id: str, requested: float, done: float) -> None:
        start, end = (datetime.fromtimestamp(t, UTC) for t in (requested, done))
        await asyncio.to_thread(store.record_reset, robot_id, start, end)

    return sink


def _login_url(settings: Settings, store: AuthStore) -> str:
    operator, token = store.ensure_default_operator(ttl_s=settings.server.login_token_ttl_s)
    log.debug("default operator: %s", operator.name)
    return f"{login_base(settings.server)}/login?token={token}"


def _add_error_handlers(app: FastAPI) -> None:
    def handler(code: int) -> Callable[[Request, Exception], Any]:
        async def respond(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=code)

        return respond

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own handler echoes the input, and Python's JSON parser accepts
        # NaN/Infinity, which strict JSON cannot encode back: that would be a 500.
        assert isinstance(exc, RequestValidationError)
        detail = finite_json(jsonable_encoder(exc.errors()))
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(NotFound, handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(Conflict, handler(status.HTTP_409_CONFLICT))
    app.add_exception_handler(BridgeError, handler(status.HTTP_503_SERVICE_UNAVAILABLE))


def web_directory(settings: Settings) -> Path | None:
    """The static site: ``server.web_dir`` relative to the working directory, else the repo's."""
    path = Path(settings.server.web_dir)
    for candidate in (path, REPO_ROOT / path):
        if candidate.is_dir():
            return candidate
    return None


def _mount_web(app: FastAPI, settings: Settings) -> None:
    directory = web_directory(settings)
    if directory is None:
        log.warning("no web directory %r: the dashboard is not served", settings.server.web_dir)
        return
    app.mount("/", NoCacheStaticFiles(directory=directory, html=True), name="web")
