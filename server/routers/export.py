"""Export selected episodes to one HDF5 file (``POST /api/export``)."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from server.deps import EpisodesDep, OperatorUser
from server.responses import NOT_FOUND, OPERATOR

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/export", tags=["export"])

MAX_EXPORT = 1000


class ExportRequest(BaseModel):
    episode_ids: list[str] = Field(
        min_length=1,
        max_length=MAX_EXPORT,
        description="Episodes to export, in order (data/demo_0, demo_1, ...).",
    )


@router.post(
    "",
    response_class=FileResponse,
    responses={
        **OPERATOR,
        **NOT_FOUND,
        200: {"content": {"application/x-hdf5": {}}, "description": "The HDF5 file."},
    },
)
def export_hdf5(body: ExportRequest, user: OperatorUser, store: EpisodesDep) -> FileResponse:
    """Write the episodes as ``data/demo_N/{obs/<key>, actions, rewards, dones}`` and download it.

    404 when an id is unknown. The temporary file is removed after sending.
    """
    tmp_dir = Path(tempfile.mkdtemp(prefix="tandem-export-"))
    path = tmp_dir / f"tandem_export_{time.strftime('%Y%m%d_%H%M%S')}.hdf5"
    try:
        store.export_hdf5(list(dict.fromkeys(body.episode_ids)), path)
    except BaseException:
        _cleanup(tmp_dir)
        raise
    log.info("%s exported %d episode(s)", user.name, len(body.episode_ids))
    return FileResponse(
        path,
        media_type="application/x-hdf5",
        filename=path.name,
        background=BackgroundTask(_cleanup, tmp_dir),
    )


def _cleanup(tmp_dir: Path) -> None:
    for child in tmp_dir.iterdir():
        child.unlink(missing_ok=True)
    tmp_dir.rmdir()
