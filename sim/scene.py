"""MJCF of the tabletop scenes, built from primitive geoms only (no meshes).

Frames: the world frame is the robot base frame. Its origin is the foot of the arm on the table
top, x points forward over the table, y to the robot's left, z up; the table top is the plane
z = 0. All lengths are metres.

The arm has six revolute joints (base yaw, shoulder pitch, elbow pitch, wrist roll, wrist pitch,
flange roll) made of capsules, and a parallel-jaw gripper whose two fingers slide along the
flange x axis. The site ``grip`` sits between the finger pads; its z axis points out of the
fingers (the approach direction) and its x axis is the direction in which the jaws open. In the
home pose the gripper points down with ``grip`` x along world x: quaternion (w, x, y, z) =
(0, 1, 0, 0), a half turn about x.
"""

from __future__ import annotations

import numpy as np

ARM_JOINTS: tuple[str, ...] = ("j1", "j2", "j3", "j4", "j5", "j6")
FINGER_JOINTS: tuple[str, ...] = ("finger_l", "finger_r")
FINGER_MAX_M = 0.04  # travel of each finger: jaw gap goes from 0 to 2 * FINGER_MAX_M
HOME_QUAT = (0.0, 1.0, 0.0, 0.0)  # wxyz of ``grip`` in the home pose: pointing down
HOME_POS = (0.4, 0.0, 0.25)  # metres, world frame
# Joint angles (rad) of the home pose, from planar trigonometry of the link lengths below;
# the environment refines them with IK at load time.
HOME_GUESS = (0.0, 0.2235, 1.747, 0.0, 1.171, 0.0)
WRIST_TO_GRIP_M = 0.135  # wrist pitch axis (j5) to the grip site, along the tool axis
CUBE_HALF_M = 0.02
DRAWER_TRAVEL_M = 0.18
POST_HALF_M = (0.025, 0.045, 0.08)  # detour: half extents x, y, z of the post to go around
GOAL_RADIUS_M = 0.03  # detour: radius of the goal disc on the table
HANDLE_STANDOFF_M = 0.07  # handle bar axis in front of the drawer's front face
HANDLE_HEIGHT_M = 0.07

_HEADER = """
<mujoco model="tandem_{task}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="{size}" offheight="{size}"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
    <map znear="0.01" zfar="10"/>
  </visual>
  <default>
    <geom contype="1" conaffinity="1" friction="1 0.01 0.001" density="400"/>
    <default class="arm">
      <joint damping="1" armature="0.05"/>
      <geom type="capsule" contype="2" conaffinity="1" rgba="0.82 0.83 0.86 1"/>
      <position kp="600" kv="40" forcerange="-150 150"/>
    </default>
    <default class="wrist">
      <joint damping="0.3" armature="0.02"/>
      <geom type="capsule" contype="2" conaffinity="1" rgba="0.82 0.83 0.86 1"/>
      <position kp="150" kv="8" forcerange="-40 40"/>
    </default>
    <default class="finger">
      <joint type="slide" damping="1" armature="0.01"/>
      <geom type="box" contype="2" conaffinity="1" condim="4" friction="2 0.05 0.002"
            solref="0.004 1" solimp="0.95 0.99 0.001" rgba="0.15 0.15 0.17 1"/>
      <position kp="500" kv="5" forcerange="-20 20"/>
    </default>
    <default class="drawer">
      <geom type="box" contype="4" conaffinity="2" rgba="0.55 0.4 0.25 1"/>
    </default>
    <default class="cabinet">
      <geom type="box" rgba="0.45 0.32 0.2 1"/>
    </default>
  </default>
  <worldbody>
    <light pos="0.4 -0.4 1.6" dir="0 0.3 -1" directional="true" castshadow="false"
           diffuse="0.5 0.5 0.5"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba="0.3 0.32 0.35 1"/>
    <geom name="table" type="box" pos="0.4 0 -0.025" size="0.6 0.6 0.025"
          rgba="0.62 0.6 0.55 1"/>
    <camera name="front" pos="{front_pos}" xyaxes="{front_xyaxes}" fovy="50"/>
"""

_ARM = """
    <body name="base">
      <geom name="pedestal" type="cylinder" pos="0 0 0.05" size="0.07 0.05"
            rgba="0.25 0.25 0.28 1"/>
      <body name="link1" pos="0 0 0.1" gravcomp="1">
        <joint name="j1" class="arm" axis="0 0 1" range="-2.9 2.9"/>
        <geom class="arm" fromto="0 0 0 0 0 0.06" size="0.055"/>
        <body name="link2" pos="0 0 0.08" gravcomp="1">
          <joint name="j2" class="arm" axis="0 1 0" range="-2.0 2.0"/>
          <geom class="arm" fromto="0 0 0 0 0 0.35" size="0.045"/>
          <body name="link3" pos="0 0 0.35" gravcomp="1">
            <joint name="j3" class="arm" axis="0 1 0" range="-0.1 2.8"/>
            <geom class="arm" fromto="0 0 0 0 0 0.2" size="0.04"/>
            <body name="link4" pos="0 0 0.2" gravcomp="1">
              <joint name="j4" class="wrist" axis="0 0 1" range="-3.0 3.0"/>
              <geom class="wrist" fromto="0 0 0 0 0 0.15" size="0.035"/>
              <body name="link5" pos="0 0 0.15" gravcomp="1">
                <joint name="j5" class="wrist" axis="0 1 0" range="-2.3 2.3"/>
                <geom class="wrist" fromto="0 0 0 0 0 0.04" size="0.032"/>
                <body name="hand" pos="0 0 0.05" gravcomp="1">
                  <joint name="j6" class="wrist" axis="0 0 1" range="-3.1 3.1"/>
                  <geom name="palm" type="box" class="wrist" pos="0 0 0.02"
                        size="0.035 0.022 0.02" rgba="0.3 0.3 0.33 1"/>
                  <site name="grip" pos="0 0 0.085" quat="0 0 0 1" size="0.006" rgba="0 1 0 0"/>
                  <camera name="wrist" pos="0 0.06 0.025" xyaxes="1 0 0 0 -1 -0.35" fovy="75"/>
                  <body name="finger_l" pos="0 0 0" gravcomp="1">
                    <joint name="finger_l" class="finger" axis="1 0 0" range="0 {fmax}"/>
                    <geom name="pad_l" class="finger" pos="0.008 0 0.07" size="0.008 0.02 0.03"/>
                  </body>
                  <body name="finger_r" pos="0 0 0" gravcomp="1">
                    <joint name="finger_r" class="finger" axis="-1 0 0" range="0 {fmax}"/>
                    <geom name="pad_r" class="finger" pos="-0.008 0 0.07" size="0.008 0.02 0.03"/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
"""

_LIFT = """
    <body name="cube" pos="0.45 0 {half}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{half} {half} {half}" density="600" condim="4"
            friction="1.2 0.02 0.002" solref="0.004 1" solimp="0.95 0.99 0.001"
            rgba="0.85 0.15 0.12 1"/>
    </body>
"""

_DRAWER = """
    <body name="cabinet" pos="0.64 0 0">
      <geom class="cabinet" pos="0 0 0.005" size="0.12 0.15 0.005"/>
      <geom class="cabinet" pos="0 0 0.135" size="0.12 0.15 0.005"/>
      <geom class="cabinet" pos="0 0.145 0.07" size="0.12 0.005 0.06"/>
      <geom class="cabinet" pos="0 -0.145 0.07" size="0.12 0.005 0.06"/>
      <geom class="cabinet" pos="0.115 0 0.07" size="0.005 0.14 0.06"/>
      <body name="drawer" pos="0 0 0">
        <joint name="drawer" type="slide" axis="-1 0 0" range="0 {travel}" damping="4"
               frictionloss="0.3" armature="0.05"/>
        <geom class="drawer" pos="-0.115 0 0.07" size="0.005 0.14 0.055"/>
        <geom class="drawer" pos="0.0 0 0.017" size="0.11 0.13 0.004"/>
        <geom class="drawer" pos="0.105 0 0.06" size="0.005 0.13 0.04"/>
        <geom class="drawer" pos="0 0.125 0.06" size="0.11 0.005 0.04"/>
        <geom class="drawer" pos="0 -0.125 0.06" size="0.11 0.005 0.04"/>
        <geom class="drawer" type="capsule" fromto="-0.12 0.07 {hz} {hx} 0.07 {hz}" size="0.008"
              rgba="0.75 0.75 0.78 1"/>
        <geom class="drawer" type="capsule" fromto="-0.12 -0.07 {hz} {hx} -0.07 {hz}"
              size="0.008" rgba="0.75 0.75 0.78 1"/>
        <geom name="handle" class="drawer" type="capsule" fromto="{hx} -0.08 {hz} {hx} 0.08 {hz}"
              size="0.01" rgba="0.9 0.1 0.1 1"/>
        <site name="handle" pos="{hx} 0 {hz}" size="0.005"/>
      </body>
    </body>
"""

_DETOUR = """
    <body name="post" pos="0.5 0 0">
      <geom name="post" type="box" pos="0 0 {post_hz}" size="{post_hx} {post_hy} {post_hz}"
            rgba="0.2 0.35 0.8 1"/>
    </body>
    <body name="goal" pos="0.62 0 0">
      <geom name="goal" type="cylinder" pos="0 0 0.001" size="{goal_r} 0.001" contype="0"
            conaffinity="0" rgba="0.15 0.75 0.25 1"/>
    </body>
"""

_FOOTER = """
  </worldbody>
  <contact>
    <exclude body1="base" body2="link1"/>
  </contact>
  <actuator>
    <position name="j1" class="arm" joint="j1" ctrlrange="-2.9 2.9"/>
    <position name="j2" class="arm" joint="j2" ctrlrange="-2.0 2.0"/>
    <position name="j3" class="arm" joint="j3" ctrlrange="-0.1 2.8"/>
    <position name="j4" class="wrist" joint="j4" ctrlrange="-3.0 3.0"/>
    <position name="j5" class="wrist" joint="j5" ctrlrange="-2.3 2.3"/>
    <position name="j6" class="wrist" joint="j6" ctrlrange="-3.1 3.1"/>
    <position name="finger_l" class="finger" joint="finger_l" ctrlrange="0 {fmax}"/>
    <position name="finger_r" class="finger" joint="finger_r" ctrlrange="0 {fmax}"/>
  </actuator>
</mujoco>
"""

FRONT_CAMERA_POS = (0.3, -0.68, 0.48)
FRONT_CAMERA_TARGET = (0.48, 0.02, 0.12)


def look_at_xyaxes(pos: tuple[float, ...], target: tuple[float, ...]) -> str:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``target`` with world z as up."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.5f}" for v in (*right, *up))


def scene_xml(task: str, image_size: int = 96) -> str:
    """Full MJCF text of the scene of ``task`` ("lift", "drawer" or "detour").

    ``image_size`` sets the offscreen buffer, which must be at least the rendered size.
    """
    header = _HEADER.format(
        task=task,
        size=max(int(image_size), 16),
        front_pos=" ".join(str(v) for v in FRONT_CAMERA_POS),
        front_xyaxes=look_at_xyaxes(FRONT_CAMERA_POS, FRONT_CAMERA_TARGET),
    )
    arm = _ARM.format(fmax=FINGER_MAX_M)
    if task == "lift":
        objects = _LIFT.format(half=CUBE_HALF_M)
    elif task == "drawer":
        objects = _DRAWER.format(
            travel=DRAWER_TRAVEL_M, hx=-0.12 - HANDLE_STANDOFF_M, hz=HANDLE_HEIGHT_M
        )
    elif task == "detour":
        hx, hy, hz = POST_HALF_M
        objects = _DETOUR.format(post_hx=hx, post_hy=hy, post_hz=hz, goal_r=GOAL_RADIUS_M)
    else:
        raise ValueError(f"unknown task {task!r}; expected 'lift', 'drawer' or 'detour'")
    return header + arm + objects + _FOOTER.format(fmax=FINGER_MAX_M)
