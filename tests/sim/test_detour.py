"""sim:detour, the multimodal task: two experts solve it two ways, their average fails."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium
import numpy as np
import pytest

import sim
from sim.experts import DetourExpert

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]


def run(policy: Policy, seeds: range, horizon: int = 50) -> list[tuple[bool, float, bool]]:
    """(success, lateral offset from the post after 4 steps, post touched) per episode."""
    env = gymnasium.make(sim.GYM_IDS["detour"], cameras=(), horizon=horizon)
    out = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        post_y, side = obs["state"][15], 0.0
        terminated = truncated = False
        t = 0
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            t += 1
            if t == 4:
                side = float(obs["state"][1] - post_y)
        out.append((bool(terminated and info["success"]), side, bool(obs["state"][-1])))
    env.close()
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("side", ["left", "right"])
def test_each_expert_solves_it_its_own_way(side: str) -> None:
    results = run(DetourExpert(side), range(20))
    assert all(ok for ok, _, _ in results)
    sign = 1.0 if side == "left" else -1.0
    assert all(sign * offset > 0.08 for _, offset, _ in results)  # past the post's side


@pytest.mark.timeout(120)
def test_the_average_of_the_two_experts_runs_into_the_post() -> None:
    left, right = DetourExpert("left"), DetourExpert("right")
    results = run(lambda obs: (left(obs) + right(obs)) / 2, range(10))
    assert not any(ok for ok, _, _ in results)
    assert all(touched for _, _, touched in results)


@pytest.mark.timeout(120)
def test_the_default_expert_takes_both_ways_about_equally() -> None:
    results = run(sim.expert_for("detour"), range(40))
    assert sum(ok for ok, _, _ in results) >= 38
    lefts = sum(offset > 0 for _, offset, _ in results)
    assert 12 <= lefts <= 28, lefts


def test_touching_the_post_spoils_the_episode() -> None:
    env = sim.make_env("detour", cameras=(), horizon=60)
    obs, _ = env.reset(seed=0)
    for _ in range(4):  # straight down onto the post
        obs, *_ = env.step(np.array([0.6, 0, -1, 0, 0, 0, -1], np.float32))
    assert obs["state"][-1] == 1.0
    for _ in range(3):  # back up, clear of the post
        obs, *_ = env.step(np.array([-1, 0, 1, 0, 0, 0, -1], np.float32))
    expert = DetourExpert("left")
    for _ in range(40):  # the expert reaches the goal, but the episode is spoiled
        obs, reward, terminated, _, info = env.step(expert(obs))
        assert not terminated and reward == 0.0 and not info["success"]
    goal = obs["state"][17:19]
    assert np.linalg.norm(obs["state"][:2] - goal) < 0.03  # it is at the goal all the same
    obs, _ = env.reset(seed=1)
    assert obs["state"][-1] == 0.0


def test_detour_expert_refuses_an_unknown_side() -> None:
    with pytest.raises(ValueError, match="side"):
        DetourExpert("up")
