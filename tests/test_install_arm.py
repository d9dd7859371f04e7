"""A robot PC's install: only ``tandem[arm]`` in a fresh venv serves a mock arm.

The package is installed from a copy of this working tree into a new virtual
environment (real pip, real registry), then ``tandem arm-server --driver mock``
runs from that venv and a bridge-side client from the test's own environment
talks to it over loopback. The robot PC must not need torch, FastAPI or a
PostgreSQL driver, and must not have them installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import zmq

from tests.robot_bridge.conftest import endpoint, stop_process, wait_hello

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "tandem", "server", "robot_bridge", "teleop", "learner"]
HEAVY = ["torch", "fastapi", "psycopg", "sqlalchemy", "mujoco", "uvicorn"]

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def _copy_sources(dest: Path) -> Path:
    """The project's own files, without caches or the repo's build outputs."""
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "node_modules")
    for name in [*SOURCES, "sim"]:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def arm_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("robot-pc")
    src = _copy_sources(root / "src")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    proc = subprocess.run(
        [*pip, f"{src}[arm]"], check=False, capture_output=True, text=True, timeout=540
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return venv


def test_the_arm_install_has_no_learner_server_or_database_stack(arm_venv: Path) -> None:
    probe = "import importlib.util as u, sys; print(*(m for m in sys.argv[1:] if u.find_spec(m)))"
    out = subprocess.run(
        [str(arm_venv / "bin" / "python"), "-c", probe, *HEAVY],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.split() == []


def test_the_arm_install_serves_a_mock_arm(arm_venv: Path, tmp_path: Path) -> None:
    ep = endpoint()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TANDEM_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [str(arm_venv / "bin" / "tandem"), "arm-server", "--driver", "mock", "--bind", ep],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    ctx = zmq.Context()
    try:
        driver = wait_hello(ep, ctx, timeout=60)
        state = driver.read_state(images=True)
        assert state.images, "the mock arm sends camera frames"
        assert all(img.ndim == 3 and img.shape[2] == 3 for img in state.images.values())
        driver.close()
    finally:
        output = stop_process(proc)
        ctx.destroy(linger=0)
    assert "Traceback" not in output, output
