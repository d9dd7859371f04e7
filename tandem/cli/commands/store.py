"""``tandem export`` (episodes to HDF5 or a LeRobot dataset) and ``tandem db upgrade``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tandem.cli.util import add_config_argument, settings_from_args
from tandem.messages import EpisodeKind, EpisodeResult

if TYPE_CHECKING:
    from server.db.schemas import EpisodeOut
    from server.store import EpisodeStore, Store

log = logging.getLogger(__name__)
PAGE = 1000


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export",
        help="export recorded episodes to HDF5 (robomimic/IBRL) or a LeRobot v3.0 dataset",
        description="Select episodes by id or by filters and write them to --out: an HDF5 file "
        "(data/demo_N/..., --format hdf5) or a LeRobot dataset directory (--format lerobot).",
    )
    add_config_argument(export)
    _add_store_arguments(export)
    export.add_argument("--out", type=Path, required=True, help="HDF5 file or dataset directory")
    export.add_argument(
        "--format",
        choices=["hdf5", "lerobot"],
        default="hdf5",
        help="hdf5 (robomimic/IBRL layout) or lerobot (parquet + MP4, v3.0)",
    )
    export.add_argument(
        "--fps",
        type=int,
        default=None,
        help="lerobot: frames per second (default: the bridge's rate_hz)",
    )
    export.add_argument("--ids", nargs="+", metavar="ID", help="episode ids (skips the filters)")
    export.add_argument(
        "--kind", choices=[k.value for k in EpisodeKind], help="only this episode kind"
    )
    export.add_argument(
        "--outcome", choices=["success", "failure", "discard", "unlabeled"], help="only this label"
    )
    export.add_argument(
        "--result",
        choices=[r.value for r in EpisodeResult],
        help="only policy episodes with this result (autonomous_success: no human step)",
    )
    export.add_argument("--eval-batch", metavar="BATCH", help="only this evaluation batch")
    export.add_argument("--robot", help="only episodes of this robot id")
    export.add_argument("--complete-only", action="store_true", help="skip incomplete episodes")
    export.add_argument(
        "--include-discarded", action="store_true", help="also export discarded episodes"
    )
    export.set_defaults(func=_export)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="migrate the database schema to the newest")
    add_config_argument(upgrade)
    _add_store_arguments(upgrade)
    upgrade.set_defaults(func=_db_upgrade)


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data directory (default: settings)")
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL (default: settings, else SQLite in the data dir)"
    )


class StoreOpenError(Exception):
    """The database or data directory cannot be opened; the text says why."""


def _open_store(args: argparse.Namespace) -> Store:
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from server.store import Store

    settings = settings_from_args(args)
    data_dir = args.data_dir or settings.data_dir
    url = args.database_url or settings.server.database_url
    try:
        return Store(url, Path(data_dir))
    except (ArgumentError, SQLAlchemyError, OSError) as exc:
        raise StoreOpenError(
            f"cannot open the store (url {url!r}, data dir {data_dir}): {exc}"
        ) from None


def _fail(exc: Exception) -> int:
    sys.stderr.write(f"tandem: {exc}\n")
    return 1


def _write(store: EpisodeStore, ids: list[str], args: argparse.Namespace) -> Path:
    if args.format == "hdf5":
        return Path(store.export_hdf5(ids, args.out))
    from server.lerobot_export import write_lerobot

    fps = args.fps or round(settings_from_args(args).bridge.rate_hz)
    items = [(row, store.load(row.id)) for row in (store.get_episode(i) for i in ids)]
    return write_lerobot(items, args.out, fps)


def _export(args: argparse.Namespace) -> int:
    from server.store import NotFoundError

    try:
        store = _open_store(args)
    except StoreOpenError as exc:
        return _fail(exc)
    try:
        ids = args.ids or _select(store.episodes, args)
        if not ids:
            sys.stderr.write("tandem: no episode matches the selection\n")
            return 1
        path = _write(store.episodes, ids, args)
    except (NotFoundError, OSError, ValueError) as exc:
        return _fail(exc)
    finally:
        store.close()
    sys.stdout.write(f"exported {len(ids)} episodes to {path}\n")
    return 0


def _select(store: EpisodeStore, args: argparse.Namespace) -> list[str]:
    """Ids of matching finished episodes, oldest first."""
    filters = {
        "robot": args.robot,
        "kind": args.kind,
        "outcome": args.outcome,
        "result": args.result,
        "eval_batch": args.eval_batch,
        "complete": True if args.complete_only else None,
        "discarded": None if args.include_discarded else False,
    }
    rows: list[EpisodeOut] = []
    offset = 0
    while True:
        page, total = store.list_episodes(**filters, offset=offset, limit=PAGE)
        rows.extend(r for r in page if not r.recording)
        offset += len(page)
        if not page or offset >= total:
            break
    return [r.id for r in reversed(rows)]


def _db_upgrade(args: argparse.Namespace) -> int:
    try:
        store = _open_store(args)  # migrates to head on open
    except StoreOpenError as exc:
        return _fail(exc)
    try:
        from alembic.runtime.migration import MigrationContext

        with store.engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
    finally:
        store.close()
    sys.stdout.write(f"database at revision {revision}\n")
    return 0
