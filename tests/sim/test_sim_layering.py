"""The sim is a part of its own: it imports neither the bridge nor the learner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_sim_imports_neither_the_bridge_nor_the_learner() -> None:
    code = (
        "import json, sys\n"
        "import sim, sim.control, sim.env, sim.experts, sim.rotations, sim.scene, sim.tasks\n"
        "sim.make_env('lift', cameras=()).reset(seed=0)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "mujoco" in loaded  # the check ran on a working sim
    assert not loaded & {"robot_bridge", "learner", "server", "teleop"}
