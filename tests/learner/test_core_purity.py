"""The algorithm core imports no I/O library (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.learner.helpers import REPO

CORE = ["learner.networks", "learner.encoders", "learner.selection", "learner.bc",
        "learner.replay", "learner.ibrl", "learner.obs"]  # fmt: skip
FORBIDDEN = ["zmq", "fastapi", "mujoco", "sqlalchemy", "gymnasium", "tandem.wire", "uvicorn"]


def test_core_modules_import_no_io_libraries() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
