"""Fixtures of the store tests: a real PostgreSQL server on loopback and a store per backend.

PostgreSQL must be installed (``apt-get install postgresql``; CI runs
scripts/system-deps.sh). If it is not, the PostgreSQL tests FAIL, never skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.store import EpisodeStore, Store

PG_USER = "tandem"


def _pg_bindir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    pytest.fail(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
        "install them with `apt-get install -y postgresql` (scripts/system-deps.sh)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_pg_user(args: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server tools as the ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str]) -> None:
    result = subprocess.run(
        _as_pg_user(args), check=False, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Start a throw-away PostgreSQL on 127.0.0.1:<free port>; yields its base URL."""
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="tandem-pg-"))  # under /tmp: reachable by postgres
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = _free_port()
    _run([str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8"])
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    log_file = base / "server.log"
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log_file), "-w",
          "start"])  # fmt: skip
    try:
        yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}"
    finally:
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


def _create_database(server_url: str) -> tuple[str, str]:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = server_url.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}", name


def _drop_database(server_url: str, name: str) -> None:
    import psycopg

    dsn = server_url.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'tandem.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url, name = _create_database(server)
    yield url
    _drop_database(server, name)


@pytest.fixture
def stores(database_url: str, tmp_path: Path) -> Iterator[Store]:
    """Every resource store over one fresh database."""
    st = Store(database_url, tmp_path / "data", metrics_interval_s=1.0)
    yield st
    st.close()


@pytest.fixture
def store(stores: Store) -> EpisodeStore:
    """The episodes store of ``stores``."""
    return stores.episodes
