"""``tandem server``: the FastAPI app on uvicorn (dashboard, REST API, WebSockets, recorder)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from tandem import security
from tandem.cli.util import add_config_argument, settings_from_args
from tandem.logs import quiet_connection_lines, setup_logging
from tandem.settings import Settings, save_role_settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "server",
        help="run the web server: dashboard, REST API, WebSockets and the episode recorder",
    )
    add_config_argument(parser)
    parser.add_argument("--host", default=None, help="interface to listen on (server.host)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (server.port; 0: any)")
    parser.add_argument(
        "--no-record", action="store_true", help="do not record the bridges' episodes"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app, print_login_url

    settings = settings_from_args(args)
    updates = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if updates:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update=updates)}
        )
    setup_logging("server", settings.log_level, settings.data_dir / "logs" / "server.log")
    save_role_settings(settings, "server")
    if not settings.server.access_log:
        quiet_connection_lines()
    security.configure(settings)
    app = create_app(settings, record=not args.no_record, on_login_url=print_login_url)
    uvicorn.run(app, **uvicorn_options(settings))
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run``/``uvicorn.Config``. With ``log_config=None``
    uvicorn's loggers go through ``setup_logging``'s handlers: one format, each line
    written once, tokens redacted. The access log is off unless ``server.access_log``."""
    return {
        "host": settings.server.host,
        "port": settings.server.port,
        "log_level": settings.log_level.lower(),
        "log_config": None,
        "access_log": settings.server.access_log,
        "ws": "websockets-sansio",
    }
