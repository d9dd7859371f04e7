"""``gymnasium.make("tandem/Lift-v0")`` in a fresh interpreter after ``import tandem``,
whichever of the two is imported first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import sys
import tandem
assert "gymnasium" not in sys.modules, "import tandem must not load Gymnasium"
import gymnasium
assert "mujoco" not in sys.modules, "registration must not import the simulator"
for env_id in ("tandem/Lift-v0", "tandem/Drawer-v0"):
    env = gymnasium.make(env_id, cameras=())
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    print(env_id, obs["state"].shape[0], type(env.unwrapped).__name__)
    env.close()
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("gymnasium_first", [False, True])
def test_gym_ids_work_in_a_fresh_interpreter_after_import_tandem(gymnasium_first: bool) -> None:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    script = SCRIPT
    if gymnasium_first:
        script = "import gymnasium\n" + script.replace(
            'assert "gymnasium" not in sys.modules, "import tandem must not load Gymnasium"', ""
        )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=100,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")
    assert lines[0].startswith("tandem/Lift-v0 ") and lines[0].endswith(" TabletopEnv")
    assert lines[1].startswith("tandem/Drawer-v0 ")
