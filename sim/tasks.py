"""Task definitions: object placement at reset, object features, success test.

Each task adds a few object features to the state vector after the proprioception:

* lift: cube position (3, metres, world frame) and cube orientation (4, wxyz, w >= 0).
* drawer: handle position (3, metres, world frame; the centre of the handle bar) and drawer
  opening (1, metres along the slide, 0 = closed).
* detour: post position (3, base centre on the table), goal position (3, centre of the disc
  on the table) and whether the post was touched (1, 0.0 or 1.0).
"""

from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np

from sim import scene

LIFT_HEIGHT_M = 0.05  # the cube's bottom must rise this far above the table
DRAWER_SUCCESS_M = 0.10  # the drawer must be pulled out this far


class LiftTask:
    """Grasp the cube and lift it: success when it is above a height and held by both jaws."""

    name = "lift"
    home_noise = 1.0  # times HOME_JOINT_NOISE_RAD of the arm's start pose
    feature_dim = 7
    feature_names: ClassVar[tuple[str, ...]] = (
        "cube_x", "cube_y", "cube_z", "cube_qw", "cube_qx", "cube_qy", "cube_qz",
    )  # fmt: skip
    x_range = (0.38, 0.56)
    y_range = (-0.15, 0.15)
    yaw_range = (-np.pi / 4, np.pi / 4)
    nominal = (0.47, 0.0, 0.0)

    def __init__(self, model: mujoco.MjModel) -> None:
        joint = model.joint("cube")
        self.qpos_adr = int(joint.qposadr[0])
        self.dof_adr = int(joint.dofadr[0])
        self.body_id = model.body("cube").id
        self.cube_geom = model.geom("cube").id
        self.pad_geoms = {model.geom("pad_l").id, model.geom("pad_r").id}

    def reset(
        self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator, randomize: bool
    ) -> None:
        """Place the cube flat on the table: random (x, y, yaw) in a box, or the nominal pose."""
        if randomize:
            x, y, yaw = (rng.uniform(*r) for r in (self.x_range, self.y_range, self.yaw_range))
        else:
            x, y, yaw = self.nominal
        data.qpos[self.qpos_adr : self.qpos_adr + 3] = (x, y, scene.CUBE_HALF_M)
        data.qpos[self.qpos_adr + 3 : self.qpos_adr + 7] = (np.cos(yaw / 2), 0, 0, np.sin(yaw / 2))
        data.qvel[self.dof_adr : self.dof_adr + 6] = 0.0

    def features(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """Cube position (3,) and orientation wxyz (4,) with w >= 0."""
        quat = data.xquat[self.body_id].copy()
        if quat[0] < 0:
            quat = -quat
        return np.concatenate([data.xpos[self.body_id], quat])

    def held(self, data: mujoco.MjData) -> bool:
        """True when both finger pads touch the cube."""
        touching = set()
        for contact in data.contact[: data.ncon]:
            pair = {int(contact.geom1), int(contact.geom2)}
            if self.cube_geom in pair:
                touching |= pair & self.pad_geoms
        return touching == self.pad_geoms

    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        """Cube bottom at least LIFT_HEIGHT_M above the table and held by both jaws."""
        lifted = data.xpos[self.body_id][2] - scene.CUBE_HALF_M >= LIFT_HEIGHT_M
        return bool(lifted and self.held(data))


class DrawerTask:
    """Open the drawer: success when it slides out at least DRAWER_SUCCESS_M."""

    name = "drawer"
    home_noise = 1.0
    feature_dim = 4
    feature_names: ClassVar[tuple[str, ...]] = ("handle_x", "handle_y", "handle_z", "opening")
    x_range = (0.6, 0.68)
    y_range = (-0.12, 0.12)
    nominal = (0.64, 0.0)

    def __init__(self, model: mujoco.MjModel) -> None:
        joint = model.joint("drawer")
        self.qpos_adr = int(joint.qposadr[0])
        self.dof_adr = int(joint.dofadr[0])
        self.cabinet_id = model.body("cabinet").id
        self.handle_site = model.site("handle").id

    def reset(
        self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator, randomize: bool
    ) -> None:
        """Close the drawer and place the cabinet: random (x, y) in a box, or nominal."""
        if randomize:
            x, y = rng.uniform(*self.x_range), rng.uniform(*self.y_range)
        else:
            x, y = self.nominal
        model.body_pos[self.cabinet_id] = (x, y, 0.0)
        data.qpos[self.qpos_adr] = 0.0
        data.qvel[self.dof_adr] = 0.0

    def features(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """Handle position (3,) and drawer opening in metres (1,)."""
        return np.concatenate([data.site_xpos[self.handle_site], [data.qpos[self.qpos_adr]]])

    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        """Drawer pulled out at least DRAWER_SUCCESS_M."""
        return bool(data.qpos[self.qpos_adr] >= DRAWER_SUCCESS_M)


class DetourTask:
    """Reach the goal disc behind a post without touching the post (a multimodal task).

    The post stands between the home pose and the goal; it is passed on the left or on the
    right (``sim.experts.DetourExpert``), and the average of the two ways runs into it.
    Touching the post spoils the episode: success is then impossible until the next reset
    (the latch is updated by ``success``, which the env calls once per step).
    """

    name = "detour"
    # A start pose within ~1 cm: the post is sized for the experts to clear its top from
    # every start while the average of their first moves comes down on it.
    home_noise = 0.3
    feature_dim = 7
    feature_names: ClassVar[tuple[str, ...]] = (
        "post_x", "post_y", "post_z", "goal_x", "goal_y", "goal_z", "post_touched",
    )  # fmt: skip
    # The post and the goal vary little: where the way is chosen, demonstrations of the two
    # ways must start from nearly the same states, or a network tells them apart by the
    # start state (memorising which demo went which way) instead of learning two modes.
    post_x_range = (0.498, 0.502)
    post_y_range = (-0.002, 0.002)
    goal_dx_range = (0.118, 0.122)  # goal x minus post x
    goal_dy_range = (-0.01, 0.01)  # goal y minus post y
    nominal = (0.5, 0.0, 0.12, 0.0)

    def __init__(self, model: mujoco.MjModel) -> None:
        self.post_id = model.body("post").id
        self.goal_id = model.body("goal").id
        self.post_geom = model.geom("post").id
        self.touched = False

    def reset(
        self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator, randomize: bool
    ) -> None:
        """Place the post and the goal behind it: random offsets in boxes, or nominal."""
        if randomize:
            ranges = (self.post_x_range, self.post_y_range, self.goal_dx_range, self.goal_dy_range)
            px, py, dx, dy = (rng.uniform(*r) for r in ranges)
        else:
            px, py, dx, dy = self.nominal
        model.body_pos[self.post_id] = (px, py, 0.0)
        model.body_pos[self.goal_id] = (px + dx, py + dy, 0.0)
        self.touched = False

    def features(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """Post base centre (3,), goal centre (3,), and 1.0 once the post was touched."""
        post, goal = model.body_pos[self.post_id], model.body_pos[self.goal_id]
        return np.concatenate([post, goal, [float(self.touched)]])

    def touching(self, data: mujoco.MjData) -> bool:
        """True when anything touches the post (only the robot can: the post is static)."""
        return any(
            self.post_geom in (int(c.geom1), int(c.geom2)) for c in data.contact[: data.ncon]
        )

    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        """Grip site within the goal disc (xy), at most 7 cm above the table, and the post
        never touched in this episode."""
        self.touched = self.touched or self.touching(data)
        site = data.site("grip").xpos
        goal = model.body_pos[self.goal_id]
        near = np.linalg.norm(site[:2] - goal[:2]) <= scene.GOAL_RADIUS_M and site[2] <= 0.07
        return bool(near and not self.touched)


Task = LiftTask | DrawerTask | DetourTask
TASK_CLASSES: dict[str, type[LiftTask] | type[DrawerTask] | type[DetourTask]] = {
    "lift": LiftTask,
    "drawer": DrawerTask,
    "detour": DetourTask,
}
