"""The offline cores (IQL, diffusion, SRPO) import no I/O library (fresh interpreter)."""

from __future__ import annotations

from tests.learner.helpers import loaded_by_importing

CORE = ["learner.offline.iql", "learner.offline.diffusion", "learner.offline.srpo"]
FORBIDDEN = ["zmq", "fastapi", "mujoco", "sqlalchemy", "gymnasium", "h5py", "tandem.wire"]


def test_offline_core_modules_import_no_io_libraries() -> None:
    assert loaded_by_importing(CORE, FORBIDDEN) == []
