"""Spaces, rendering, action handling, limits, episode ends and resets of the tabletop envs."""

from __future__ import annotations

import gymnasium
import mujoco
import numpy as np
import pytest

import sim
from sim import scene
from sim.rotations import rotation_between, yaw_of

FEATURE_DIMS = {"lift": 7, "drawer": 4, "detour": 7}


def act(x: float = 0.0, y: float = 0.0, z: float = 0.0, rot=(0.0, 0.0, 0.0), grip: float = -1.0):
    return np.array([x, y, z, *rot, grip], dtype=np.float32)


@pytest.mark.parametrize("task", sim.TASKS)
def test_spaces_and_observation_layout(task: str) -> None:
    env = gymnasium.make(sim.GYM_IDS[task])
    base = env.unwrapped
    assert base.task == task
    assert base.proprio_dim == sim.PROPRIO_DIM == 14
    assert env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (7,), np.float32)
    state_dim = sim.PROPRIO_DIM + FEATURE_DIMS[task]
    assert len(base.state_names) == state_dim and len(set(base.state_names)) == state_dim
    assert env.observation_space["state"].shape == (state_dim,)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"state", "front", "wrist"}
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (state_dim,)
    assert env.observation_space.contains(obs)
    pos, quat = base.ee_pose()
    np.testing.assert_allclose(obs["state"][0:3], pos, atol=1e-6)
    np.testing.assert_allclose(obs["state"][3:7], quat, atol=1e-6)
    assert np.linalg.norm(quat) == pytest.approx(1.0)
    assert obs["state"][7] == pytest.approx(1.0, abs=1e-3)  # gripper starts open
    assert set(info) >= {"success", "is_success", "ee_pos", "ee_quat", "gripper"}
    assert info["ee_pos"].shape == (3,) and info["ee_quat"].shape == (4,)
    assert isinstance(info["gripper"], float)
    env.close()


@pytest.mark.parametrize("size", [96, 64])
def test_both_cameras_render_distinct_images(size: int) -> None:
    env = sim.make_env("lift", image_size=size)
    obs, _ = env.reset(seed=1)
    for cam in ("front", "wrist"):
        img = obs[cam]
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert img.std() > 5.0, f"{cam} image is flat"
    assert not np.array_equal(obs["front"], obs["wrist"])
    again = env.render_cameras()
    np.testing.assert_array_equal(again["front"], obs["front"])
    obs2, *_ = env.step(act(z=-1.0))
    assert not np.array_equal(obs2["wrist"], obs["wrist"]), "wrist camera must move with the arm"
    env.close()


def test_state_only_env_never_renders() -> None:
    env = gymnasium.make("tandem/Lift-v0", cameras=())
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(act())
    assert set(obs) == {"state"}
    assert env.unwrapped._renderer is None


def test_render_mode_rgb_array_gives_front_image() -> None:
    env = gymnasium.make("tandem/Drawer-v0", cameras=(), render_mode="rgb_array", image_size=48)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8


def test_scene_is_a_jointed_arm_of_primitive_geoms() -> None:
    env = sim.make_env("drawer", cameras=())
    model = env.model
    assert model.nmesh == 0 and model.nmocap == 0
    primitives = {
        mujoco.mjtGeom.mjGEOM_PLANE, mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CAPSULE,
        mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_SPHERE,
    }  # fmt: skip
    assert set(model.geom_type.tolist()) <= {int(g) for g in primitives}
    assert all(model.joint(j).type[0] == mujoco.mjtJoint.mjJNT_HINGE for j in scene.ARM_JOINTS)
    assert model.nu == len(scene.ARM_JOINTS) + len(scene.FINGER_JOINTS)


def test_actions_are_clipped_to_unit_box() -> None:
    results = []
    for scale in (1.0, 7.5):
        env = sim.make_env("lift", cameras=())
        env.reset(seed=0, options={"randomize": False})
        obs, *_ = env.step(np.array([scale, -scale, 0, 0, 0, scale, -scale], np.float32))
        results.append(obs["state"])
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)


@pytest.mark.parametrize("limit", [0.05, 0.02])
def test_translation_per_step_is_limited_and_achieved(limit: float) -> None:
    env = sim.make_env("lift", cameras=(), max_translation_m=limit)
    env.reset(seed=0, options={"randomize": False})
    rng = np.random.default_rng(0)
    for _ in range(40):
        before = env.ee_pose()[0]
        env.step(np.concatenate([rng.uniform(-1, 1, 6), [-1.0]]).astype(np.float32))
        moved = np.linalg.norm(env.ee_pose()[0] - before)
        assert moved <= 1.2 * limit * np.sqrt(3) + 0.003
    env.reset(seed=0, options={"randomize": False})
    start = env.ee_pose()[0]
    for _ in range(3):
        env.step(act(x=1.0))
        step = env.ee_pose()[0] - start
        start = env.ee_pose()[0]
        assert step[0] == pytest.approx(limit, rel=0.12), "a full action should move a full step"
        assert abs(step[1]) < 0.1 * limit and abs(step[2]) < 0.1 * limit


def test_rotation_per_step_is_limited_and_achieved() -> None:
    env = sim.make_env("lift", cameras=(), max_rotation_rad=0.2)
    env.reset(seed=0, options={"randomize": False})
    yaws = [yaw_of(env.ee_pose()[1])]
    for _ in range(3):
        _, before = env.ee_pose()
        env.step(act(rot=(0.0, 0.0, 1.0)))
        _, after = env.ee_pose()
        yaws.append(yaw_of(after))
        assert np.linalg.norm(rotation_between(after, before)) <= 0.2 * 1.15
    np.testing.assert_allclose(np.diff(yaws), 0.2, atol=0.025)


def test_gripper_command_is_absolute() -> None:
    env = sim.make_env("lift", cameras=())
    env.reset(seed=0, options={"randomize": False})
    for _ in range(2):
        obs, *_ = env.step(act(grip=1.0))
    assert obs["state"][7] < 0.05
    obs, *_ = env.step(act(grip=0.0))
    assert obs["state"][7] == pytest.approx(0.5, abs=0.05)
    obs, *_ = env.step(act(grip=-1.0))
    assert obs["state"][7] > 0.95


@pytest.mark.parametrize("task", sim.TASKS)
def test_truncation_at_horizon_without_success(task: str) -> None:
    env = gymnasium.make(sim.GYM_IDS[task], cameras=(), horizon=5)
    env.reset(seed=0)
    for t in range(1, 6):
        _, reward, terminated, truncated, info = env.step(act())
        assert reward == 0.0 and not terminated and not info["success"]
        assert truncated == (t == 5)


@pytest.mark.parametrize("task", sim.TASKS)
def test_termination_and_reward_on_success(task: str) -> None:
    env = gymnasium.make(sim.GYM_IDS[task], cameras=())
    expert = sim.expert_for(task)
    obs, _ = env.reset(seed=11)
    rewards = []
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(expert(obs))
        rewards.append(reward)
    assert terminated and not truncated
    assert info["success"] and info["is_success"]
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0
    if task == "lift":
        assert obs["state"][16] >= scene.CUBE_HALF_M + 0.05  # cube centre height
    else:
        assert obs["state"][17] >= 0.1  # drawer opening


@pytest.mark.parametrize("task", sim.TASKS)
def test_reset_randomisation_by_seed(task: str) -> None:
    env = sim.make_env(task, cameras=())
    a1, _ = env.reset(seed=1)
    b, _ = env.reset(seed=2)
    a2, _ = env.reset(seed=1)
    np.testing.assert_array_equal(a1["state"], a2["state"])
    objects = slice(sim.PROPRIO_DIM, sim.PROPRIO_DIM + 3)
    assert np.linalg.norm(a1["state"][objects] - b["state"][objects]) > 1e-3
    assert np.linalg.norm(a1["state"][:3] - b["state"][:3]) > 1e-4  # home pose noise
    other = sim.make_env(task, cameras=())
    a3, _ = other.reset(seed=1)
    np.testing.assert_array_equal(a1["state"], a3["state"])


@pytest.mark.parametrize("task", sim.TASKS)
def test_reset_without_randomisation_is_nominal(task: str) -> None:
    env = sim.make_env(task, cameras=())
    first, _ = env.reset(seed=1, options={"randomize": False})
    second, _ = env.reset(seed=2, options={"randomize": False})
    np.testing.assert_array_equal(first["state"], second["state"])
    np.testing.assert_allclose(first["state"][:3], scene.HOME_POS, atol=1e-4)
    np.testing.assert_allclose(first["state"][3:7], scene.HOME_QUAT, atol=1e-4)


@pytest.mark.parametrize(
    "bad", [[np.nan, 0, 0, 0, 0, 0, 0], [0, 0, np.inf, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, -np.inf]]
)
def test_non_finite_action_is_rejected(bad: list[float]) -> None:
    env = gymnasium.make("tandem/Lift-v0", cameras=())
    env.reset(seed=0)
    before = env.unwrapped.ee_pose()[0]
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array(bad, dtype=np.float32))
    np.testing.assert_array_equal(env.unwrapped.ee_pose()[0], before)
    env.step(act())  # the env is still usable


@pytest.mark.parametrize("bad", [np.zeros(6), np.zeros((7, 1)), "forward", None])
def test_malformed_action_is_rejected(bad: object) -> None:
    env = sim.make_env("lift", cameras=())
    with pytest.raises(ValueError, match="action"):
        env.step(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task": "stack"},
        {"task": "lift", "cameras": ("top",)},
        {"task": "lift", "cameras": "front"},
        {"task": "lift", "image_size": 4},
        {"task": "lift", "horizon": 0},
        {"task": "lift", "max_translation_m": 0.0},
    ],
)
def test_bad_construction_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        sim.make_env(**kwargs)


def test_gymnasium_ids_are_registered() -> None:
    assert set(sim.GYM_IDS.values()) <= set(gymnasium.registry)
    env = gymnasium.make("tandem/Drawer-v0", cameras=(), horizon=17, max_translation_m=0.03)
    assert env.unwrapped.horizon == 17
    assert env.unwrapped.max_translation_m == 0.03


@pytest.mark.filterwarnings("ignore:.*infinity.*")  # the state space is unbounded on purpose
@pytest.mark.parametrize("task", sim.TASKS)
def test_passes_gymnasium_env_checker(task: str) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(sim.make_env(task, image_size=32), skip_render_check=True)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("task", sim.TASKS)
def test_random_actions_keep_the_simulation_sane(task: str) -> None:
    """Held random commands (pushing into the table, the cabinet, joint limits) stay stable."""
    env = sim.make_env(task, cameras=(), horizon=10_000)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    action = np.zeros(7, np.float32)
    for t in range(400):
        if t % 5 == 0:
            action = rng.uniform(-1, 1, 7).astype(np.float32)
        obs, *_ = env.step(action)
        state = obs["state"]
        assert np.all(np.isfinite(state))
        assert np.all(np.abs(state[8:14]) < 10.0), "end-effector velocity exploded"
        assert -0.05 < state[2] < 0.7
    assert all(w.number == 0 for w in env.data.warning), "MuJoCo raised a warning"


def test_lift_success_needs_the_cube_held() -> None:
    env = sim.make_env("lift", cameras=())
    env.reset(seed=0)
    adr = env.model.joint("cube").qposadr[0]
    env.data.qpos[adr + 2] = 0.2  # cube in mid-air, nobody holding it
    mujoco.mj_forward(env.model, env.data)
    assert not env._task.success(env.model, env.data)


def test_drawer_success_threshold() -> None:
    env = sim.make_env("drawer", cameras=())
    env.reset(seed=0)
    adr = env.model.joint("drawer").qposadr[0]
    for opening, expected in ((0.05, False), (0.099, False), (0.12, True)):
        env.data.qpos[adr] = opening
        mujoco.mj_forward(env.model, env.data)
        assert env._task.success(env.model, env.data) == expected
        state = env._observation()["state"]
        assert state[17] == pytest.approx(opening)
