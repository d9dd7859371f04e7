"""The offline cores (IQL, diffusion, SRPO) import no I/O library (fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.learner.helpers import REPO

CORE = ["learner.offline.iql", "learner.offline.diffusion", "learner.offline.srpo"]
FORBIDDEN = ["zmq", "fastapi", "mujoco", "sqlalchemy", "gymnasium", "h5py", "tandem.wire"]


def test_offline_core_modules_import_no_io_libraries() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
