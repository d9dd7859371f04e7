"""``tandem login-link``: print a fresh one-time login link (docs/web.md, "Device link").

It opens the store the server uses (as ``tandem export`` does) and issues a one-time token
there, so the link works with the running server without a restart.
"""

from __future__ import annotations

import argparse
import sys

from tandem.cli.commands.store import StoreOpenError, _add_store_arguments, _fail, _open_store
from tandem.cli.util import add_config_argument, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser(
        "login-link",
        help="print a fresh one-time login link for the dashboard (e.g. for a headset)",
        description="Issue a one-time login token in the server's store and print the link "
        "that trades it for a session (valid server.login_token_ttl_s, usable once). The "
        "server need not restart; it must use the same database.",
    )
    add_config_argument(cmd)
    _add_store_arguments(cmd)
    cmd.add_argument(
        "--operator",
        metavar="NAME",
        help="log in as this account (default: the first operator, created if none exists)",
    )
    cmd.add_argument(
        "--base-url",
        metavar="URL",
        help="the server's address as the other device sees it (default: server.public_url, "
        "else http://HOST:PORT from the settings)",
    )
    cmd.set_defaults(func=_login_link)


def _login_link(args: argparse.Namespace) -> int:
    from server.login_links import is_loopback, issue_login_url, login_base

    settings = settings_from_args(args)
    try:
        store = _open_store(args)
    except StoreOpenError as exc:
        return _fail(exc)
    ttl = settings.server.login_token_ttl_s
    base = (args.base_url or "").rstrip("/") or login_base(settings.server)
    try:
        if args.operator:
            operator = store.auth.get_operator(args.operator)
            if operator is None:
                sys.stderr.write(f"tandem: no account named {args.operator!r}\n")
                return 1
            url = issue_login_url(store.auth, operator.id, ttl, base)
        else:
            _, token = store.auth.ensure_default_operator(ttl_s=ttl)
            url = f"{base}/login?token={token}"
    finally:
        store.close()
    sys.stdout.write(f"{url}\n")
    note = " (this machine only: pass --base-url for another device)" if is_loopback(url) else ""
    sys.stderr.write(f"one-time link, valid {ttl / 60:.0f} min, usable once{note}\n")
    return 0
