"""What the robot side may import: the arm-server stays light (a robot PC installs only
``tandem[arm]``), and the bridge reaches into the learner only through its acting policy."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "mujoco", "cv2", "fastapi", "sqlalchemy", "psycopg", "h5py", "learner",
         "server", "gymnasium", "sim"]  # fmt: skip


@pytest.fixture(scope="module")
def arm_server_modules() -> set[str]:
    """Top-level modules loaded by importing the arm-server and serving the mock driver's
    state (what ``tandem arm-server --driver mock`` runs), in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from robot_bridge.arm_server import make_driver\n"
        "from tandem.settings import BridgeSettings\n"
        "driver = make_driver('mock', BridgeSettings())\n"
        "driver.connect()\n"
        "driver.read_state(images=True)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("heavy", HEAVY)
def test_the_arm_server_with_the_mock_driver_imports_no_heavy_module(
    arm_server_modules: set[str], heavy: str
) -> None:
    assert "robot_bridge" in arm_server_modules and "zmq" in arm_server_modules
    assert heavy not in arm_server_modules


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_the_bridge_imports_nothing_of_the_learner_but_its_acting_policy() -> None:
    found = {
        f"{path.relative_to(REPO)}: {name}"
        for path in (REPO / "robot_bridge").rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in ("learner", "server", "teleop") and name != "learner.acting"
    }
    assert found == set()
    assert any("learner.acting" in _imports(p) for p in (REPO / "robot_bridge").rglob("*.py"))
