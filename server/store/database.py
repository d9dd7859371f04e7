"""One database (engine, migrations, transactions) and the data directory beside it.

Every resource store in this package takes a ``Database``; each of their methods
opens its own short transaction, so they may be shared by the HTTP app and the
recorder thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from server.db.engine import default_database_url, make_engine, make_session_factory, migrate


class Database:
    """The engine of ``database_url`` (SQLite under ``data_dir`` when None), migrated to head."""

    def __init__(self, database_url: str | None, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.episodes_root = self.data_dir / "episodes"
        self.episodes_root.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(database_url or default_database_url(self.data_dir))
        migrate(self.engine)
        self._sessions = make_session_factory(self.engine)

    def close(self) -> None:
        """Close the pooled connections (a later transaction reconnects)."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as session:
            yield session
