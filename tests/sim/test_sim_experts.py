"""The scripted experts solve both tasks through the Gymnasium ids (a "Done when" of issue 3)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import sim
from sim.rotations import yaw_of

EPISODES = 50
MIN_SUCCESS_RATE = 0.9


def run_expert_episodes(task: str, seeds: range, **env_kwargs: float) -> list[bool]:
    env = gymnasium.make(sim.GYM_IDS[task], cameras=(), **env_kwargs)
    results = []
    for seed in seeds:
        expert = sim.expert_for(task)
        obs, _ = env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(expert(obs))
        results.append(bool(terminated and info["success"]))
    env.close()
    return results


@pytest.mark.timeout(120)
@pytest.mark.parametrize("task", sim.TASKS)
def test_expert_succeeds_on_seeded_episodes(task: str) -> None:
    results = run_expert_episodes(task, range(EPISODES))
    rate = sum(results) / len(results)
    assert rate >= MIN_SUCCESS_RATE, f"{task}: expert success {rate:.2f} on seeds 0..49"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("task", sim.TASKS)
def test_expert_copes_with_smaller_step_limits(task: str) -> None:
    """The bridge may run tighter per-step limits; the experts only get slower."""
    results = run_expert_episodes(task, range(20), max_translation_m=0.02, max_rotation_rad=0.1)
    assert sum(results) >= 18


@pytest.mark.parametrize("task", sim.TASKS)
def test_expert_actions_are_deterministic_bounded_float32(task: str) -> None:
    env = sim.make_env(task, cameras=())
    obs, _ = env.reset(seed=7)
    first, second = sim.expert_for(task), sim.expert_for(task)
    for _ in range(12):
        act = first(obs)
        assert act.shape == (7,)
        assert act.dtype == np.float32
        assert np.all(np.abs(act) <= 1.0)
        np.testing.assert_array_equal(act, second(obs))
        np.testing.assert_array_equal(act, first(obs))  # no hidden state advanced by a call
        obs, *_ = env.step(act)


@pytest.mark.parametrize("task", sim.TASKS)
def test_one_expert_object_serves_consecutive_episodes(task: str) -> None:
    """A finished episode leaves nothing behind that spoils the next one."""
    env = sim.make_env(task, cameras=(), horizon=60)
    expert = sim.expert_for(task)
    for seed in (3, 4, 5):
        obs, _ = env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, _ = env.step(expert(obs))
        assert terminated, f"{task} seed {seed} not solved by a reused expert"
    expert.reset()  # type: ignore[attr-defined]


def test_expert_for_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        sim.expert_for("stack")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", range(4))
def test_grasped_cube_stays_in_the_jaws_through_fast_motion(seed: int) -> None:
    """Friction grasps must not creep: a held cube survives 30 steps of random full-speed motion."""
    env = sim.make_env("lift", cameras=(), horizon=300)
    expert = sim.expert_for("lift")
    obs, _ = env.reset(seed=seed)
    terminated = False
    while not terminated:
        obs, _, terminated, _, _ = env.step(expert(obs))
    rng = np.random.default_rng(seed)
    for _ in range(30):
        action = np.concatenate([rng.uniform(-1, 1, 6), [1.0]]).astype(np.float32)
        action[2] = np.sign(0.25 - obs["state"][2])  # stay clear of the table
        obs, *_ = env.step(action)
    state = obs["state"]
    # MuJoCo friction is soft: a few millimetres of creep under these accelerations is expected
    assert np.linalg.norm(state[14:17] - state[0:3]) < 0.025, "cube slipped out of the grasp"
    assert env._task.held(env.data)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("task", sim.TASKS)
def test_expert_recovers_a_wrist_wound_up_to_its_limit(task: str) -> None:
    """After a policy turned the hand ~180 degrees either way (where the wrist's joint limit
    is), the expert, taking over, turns back the long way and still succeeds."""
    env = gymnasium.make(sim.GYM_IDS[task], cameras=())
    expert = sim.expert_for(task)
    for seed, direction in ((0, 1.0), (1, -1.0), (2, 1.0), (3, -1.0)):
        obs, _ = env.reset(seed=seed)
        for _ in range(16):
            obs, *_ = env.step(np.array([0, 0, 0.3, 0, 0, direction, -1], np.float32))
        assert abs(sim_yaw(obs)) > 3.0
        for _ in range(150):
            obs, _, terminated, _, info = env.step(expert(obs))
            if terminated:
                break
        assert terminated and info["success"], f"{task} seed {seed}: no recovery"
    env.close()


def sim_yaw(obs: dict[str, np.ndarray]) -> float:
    return yaw_of(np.asarray(obs["state"][3:7], np.float64))
