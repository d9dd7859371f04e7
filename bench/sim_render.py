"""Per-tick cost of the simulated tabletop: physics + IK, and two-camera render + JPEG encode.

Usage: MUJOCO_GL=egl python bench/sim_render.py [--task lift] [--steps 300] [--size 96]

Prints p50 / p99 in milliseconds for:
* step (physics + IK) of a state-only env (cameras=()),
* render of both cameras,
* render of both cameras plus cv2.imencode (JPEG) of both images: the live-frame cost per tick,
* a full env.step with both cameras (physics + IK + render).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("MUJOCO_GL", "egl")

import cv2
import numpy as np

from robot_bridge import sim


def percentiles(samples_s: list[float]) -> str:
    ms = np.asarray(samples_s) * 1e3
    return f"p50 {np.percentile(ms, 50):7.3f} ms   p99 {np.percentile(ms, 99):7.3f} ms"


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


class Driver:
    """Steps an env with its scripted expert, resetting when an episode ends."""

    def __init__(self, env: sim.TabletopEnv, task: str, seed: int = 0) -> None:
        self.env, self.task, self.seed = env, task, seed
        self.expert = sim.expert_for(task)
        self.obs, _ = env.reset(seed=seed)

    def step(self) -> None:
        self.obs, _, terminated, truncated, _ = self.env.step(self.expert(self.obs))
        if terminated or truncated:
            self.seed += 1
            self.obs, _ = self.env.reset(seed=self.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sim.TASKS, default="lift")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--jpeg-quality", type=int, default=90)
    args = parser.parse_args()
    params = [int(cv2.IMWRITE_JPEG_QUALITY), args.jpeg_quality]

    state_env = sim.make_env(args.task, cameras=())
    driver = Driver(state_env, args.task)
    step_s = timed(driver.step, args.steps)

    cam_env = sim.make_env(args.task, image_size=args.size)
    cam_driver = Driver(cam_env, args.task)

    def render_and_encode() -> None:
        for img in cam_env.render_cameras().values():
            ok, _ = cv2.imencode(".jpg", img, params)
            assert ok

    def tick() -> None:
        cam_driver.step()
        render_and_encode()

    render_s = timed(cam_env.render_cameras, args.steps)
    encode_s = timed(render_and_encode, args.steps)
    full_s = timed(cam_driver.step, args.steps)
    print(
        f"task={args.task} size={args.size} steps={args.steps} MUJOCO_GL={os.environ['MUJOCO_GL']}"
    )
    print(f"physics+IK step (cameras=())   {percentiles(step_s)}")
    print(f"render 2 cameras               {percentiles(render_s)}")
    print(f"render 2 cameras + 2x JPEG     {percentiles(encode_s)}")
    print(f"env.step with 2 cameras        {percentiles(full_s)}")
    state_env.close()
    cam_env.close()


if __name__ == "__main__":
    main()
