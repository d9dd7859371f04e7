"""The algorithm core imports no I/O library (checked in a fresh interpreter)."""

from __future__ import annotations

from tests.learner.helpers import loaded_by_importing

CORE = ["learner.networks", "learner.encoders", "learner.selection", "learner.bc",
        "learner.replay", "learner.ibrl", "learner.obs", "learner.il"]  # fmt: skip
FORBIDDEN = ["zmq", "fastapi", "mujoco", "sqlalchemy", "gymnasium", "tandem.wire", "uvicorn"]


def test_core_modules_import_no_io_libraries() -> None:
    assert loaded_by_importing(CORE, FORBIDDEN) == []
