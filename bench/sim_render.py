"""Per-tick cost of the simulated tabletop: physics + IK, and two-camera render + JPEG encode.

Usage: MUJOCO_GL=egl python bench/sim_render.py [--task lift] [--steps 300] [--size 96] [--json]

Prints p50 / p99 in milliseconds for:
* step (physics + IK) of a state-only env (cameras=()),
* render of both cameras,
* render of both cameras plus cv2.imencode (JPEG) of both images: the live-frame cost per tick,
* a full env.step with both cameras (physics + IK + render),
* a full env.step with both cameras plus JPEG of both observed images: the bridge's tick.

With ``--json`` each line is one JSON object: ``{"measure", "label", "p50_ms", "p99_ms", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import cv2
import numpy as np

import sim

LABELS = {
    "physics_ik_step": "physics+IK step (cameras=())",
    "render_2_cameras": "render 2 cameras",
    "render_2_cameras_jpeg": "render 2 cameras + 2x JPEG",
    "env_step_2_cameras": "env.step with 2 cameras",
    "env_step_2_cameras_jpeg": "env.step with 2 cameras + 2x JPEG",
}


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    """(p50, p99) of ``samples_s`` in milliseconds."""
    ms = np.asarray(samples_s) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


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


def measure(task: str, steps: int, size: int, jpeg_quality: int) -> dict[str, list[float]]:
    """Seconds per call of every measure in LABELS, ``steps`` calls each."""
    params = [int(cv2.IMWRITE_JPEG_QUALITY), jpeg_quality]

    def encode(images: list[np.ndarray]) -> None:
        for img in images:
            ok, _ = cv2.imencode(".jpg", img, params)
            assert ok

    state_env = sim.make_env(task, cameras=())
    cam_env = sim.make_env(task, image_size=size)
    driver, cam_driver = Driver(state_env, task), Driver(cam_env, task)

    def step_and_encode() -> None:
        cam_driver.step()
        encode([cam_driver.obs[cam] for cam in cam_env.cameras])

    samples = {
        "physics_ik_step": timed(driver.step, steps),
        "render_2_cameras": timed(cam_env.render_cameras, steps),
        "render_2_cameras_jpeg": timed(lambda: encode([*cam_env.render_cameras().values()]), steps),
        "env_step_2_cameras": timed(cam_driver.step, steps),
        "env_step_2_cameras_jpeg": timed(step_and_encode, steps),
    }
    state_env.close()
    cam_env.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sim.TASKS, default="lift")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    samples = measure(args.task, args.steps, args.size, args.jpeg_quality)
    gl = os.environ["MUJOCO_GL"]
    if not args.json:
        print(f"task={args.task} size={args.size} steps={args.steps} MUJOCO_GL={gl}")
    for key, secs in samples.items():
        p50, p99 = percentiles(secs)
        record = {"measure": key, "label": LABELS[key], "p50_ms": round(p50, 3),
                  "p99_ms": round(p99, 3), "steps": args.steps, "task": args.task,
                  "size": args.size, "mujoco_gl": gl}  # fmt: skip
        text = f"{LABELS[key]:<34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"
        print(json.dumps(record) if args.json else text)


if __name__ == "__main__":
    main()
