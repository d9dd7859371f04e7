"""Task definitions: object placement at reset, object features, success test.

Each task adds a few object features to the state vector after the proprioception:

* lift: cube position (3, metres, world frame) and cube orientation (4, wxyz, w >= 0).
* drawer: handle position (3, metres, world frame; the centre of the handle bar) and drawer
  opening (1, metres along the slide, 0 = closed).
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


Task = LiftTask | DrawerTask
TASK_CLASSES: dict[str, type[LiftTask] | type[DrawerTask]] = {
    "lift": LiftTask,
    "drawer": DrawerTask,
}
