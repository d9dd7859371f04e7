"""The account of ``tandem demo-operator``, provisioned by the server at start-up.

The server keeps the account's name and password in a 0600 file under the data
directory (``tandem.credentials``); the scripted operator, on the same machine,
reads it and logs in over HTTP like a person would. It never opens the database.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from server.db.models import Role
from server.store import AuthStore
from tandem.credentials import (
    SCRIPTED_OPERATOR,
    Credentials,
    credentials_file,
    read_credentials,
    write_credentials,
)
from tandem.settings import Settings

log = logging.getLogger(__name__)


def provision_scripted_operator(settings: Settings, auth: AuthStore) -> Path | None:
    """Make the scripted operator's account match its credentials file; returns the file.

    A missing or unreadable file is replaced with a new random password. Does
    nothing (None) when ``server.scripted_operator`` is off.
    """
    if not settings.server.scripted_operator:
        return None
    path = credentials_file(settings.data_dir)
    try:
        credentials = read_credentials(path)
    except ValueError as exc:
        log.warning("%s: writing new credentials", exc)
        credentials = None
    if credentials is None or credentials.name != SCRIPTED_OPERATOR:
        credentials = Credentials(name=SCRIPTED_OPERATOR, password=secrets.token_urlsafe(24))
        write_credentials(path, credentials)
    auth.put_operator(credentials.name, Role.OPERATOR, credentials.password)
    log.info("scripted operator %r can log in with the credentials in %s", credentials.name, path)
    return path
