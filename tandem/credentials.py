"""Login credentials that the server provisions for a client on its own machine.

The server writes ``<data_dir>/secrets/<account>.json`` (file 0600, folder 0700)
with an account's name and password at start-up; a local client (the scripted
operator) reads the file and logs in over HTTP (``POST /api/auth/login``) like
any other user. Only the server opens the database.

The client keeps the session token it got in ``<account>.session`` beside the
credentials (also 0600) and reuses it while the server accepts it, as a browser
keeps its session: a client started many times a minute (a test, a script)
does not run into the server's login rate limit.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

SCRIPTED_OPERATOR = "scripted-operator"  # the account of ``tandem demo-operator``
SECRETS_DIR = "secrets"


class Credentials(BaseModel):
    """A name and password for ``POST /api/auth/login``."""

    name: str = Field(min_length=1, description="Operator account name.")
    password: str = Field(min_length=8, description="The account's password, in clear.")


def credentials_file(data_dir: Path, account: str = SCRIPTED_OPERATOR) -> Path:
    """Where the server keeps the credentials of ``account``."""
    return Path(data_dir) / SECRETS_DIR / f"{account}.json"


def read_credentials(path: Path) -> Credentials | None:
    """The credentials in ``path``; None when there is no such file.

    Raises ValueError when the file is there but unreadable or malformed.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    try:
        return Credentials.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(f"{path} does not hold credentials: {exc}") from None


def write_credentials(path: Path, credentials: Credentials) -> None:
    """Write ``credentials`` atomically, readable by this user only (0600 in a 0700 folder)."""
    write_private(path, credentials.model_dump_json())


def session_file(data_dir: Path, account: str = SCRIPTED_OPERATOR) -> Path:
    """Where a local client keeps the session token it last got for ``account``."""
    return Path(data_dir) / SECRETS_DIR / f"{account}.session"


def read_session(path: Path) -> str | None:
    """The kept session token; None when there is none (or the file is unreadable)."""
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    return token or None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically, readable by this user only (0600 in a 0700 folder)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)
