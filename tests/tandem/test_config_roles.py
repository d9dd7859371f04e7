"""``tandem config show --role ROLE`` resolves the settings as that process does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.learner.helpers import REPO

pytestmark = pytest.mark.timeout(60)


def show(*args: str, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tandem", "config", "show", *args], cwd=REPO, capture_output=True,
        text=True, timeout=50, check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **env},
    )  # fmt: skip
    return json.loads(done.stdout)


def test_the_learner_role_applies_its_profile_and_overrides_still_win() -> None:
    plain, learner = show(), show("--role", "learner")
    assert plain["learner"]["hidden_dim"] == 1024  # the built-in default
    assert learner["learner"]["hidden_dim"] == 256  # what tandem learner runs: the cpu profile
    assert learner["learner"]["bc_steps"] == 2000
    over = show("--role", "learner", TANDEM_LEARNER__BC_STEPS="600")
    assert over["learner"]["bc_steps"] == 600 and over["learner"]["hidden_dim"] == 256
    assert show("--role", "server") == plain
