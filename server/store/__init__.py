"""The server's store, one module per resource over one database.

* ``episodes``: episode rows and files (``EpisodeStore``; the recorder writes through it);
* ``auth``: operators, passwords and tokens (``AuthStore``);
* ``activity``: operating sessions and scene resets (``ActivityStore``);
* ``metrics``: learner runs and metrics history (``MetricsStore``);
* ``evals``: evaluation batches (``EvalStore``);
* ``frames`` (JPEG of one stored camera frame) and ``reconcile`` (rows after a crash).

``Store`` opens the database once and holds one of each; routers take the one
they need (``server.deps``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server.store.activity import ActivityStore
from server.store.auth import AuthStore
from server.store.database import Database
from server.store.episodes import EpisodeFilters, EpisodeStore
from server.store.errors import Conflict, ConflictError, NotFound, NotFoundError, StoreError
from server.store.evals import EvalStore
from server.store.metrics import MetricsStore

__all__ = [
    "ActivityStore",
    "AuthStore",
    "Conflict",
    "ConflictError",
    "Database",
    "EpisodeFilters",
    "EpisodeStore",
    "EvalStore",
    "MetricsStore",
    "NotFound",
    "NotFoundError",
    "Store",
    "StoreError",
]


class Store:
    """Every resource store of one database and data directory."""

    def __init__(
        self, database_url: str | None, data_dir: Path, *, metrics_interval_s: float = 1.0
    ) -> None:
        self.db = Database(database_url, data_dir)
        self.episodes = EpisodeStore(self.db)
        self.auth = AuthStore(self.db)
        self.activity = ActivityStore(self.db)
        self.metrics = MetricsStore(self.db, interval_s=metrics_interval_s)
        self.evals = EvalStore(self.db)

    @property
    def engine(self) -> Engine:
        return self.db.engine

    def close(self) -> None:
        """Close the database's pooled connections (a later call reconnects)."""
        self.db.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction (committed on success, rolled back on error)."""
        with self.db.session() as s:
            yield s
