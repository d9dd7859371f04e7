"""Fixtures of the learner tests."""

from __future__ import annotations

import pytest

from learner.obs import ObsSpec


@pytest.fixture
def state_spec() -> ObsSpec:
    return ObsSpec(state_dim=5, action_dim=3, raw_state_dim=5)
