"""OpenCV camera sources, exercised with a video file written in tmp_path."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from robot_bridge.cameras import CameraSet, OpenCVCamera, parse_source
from tandem.messages import StartDemo
from tests.robot_bridge.conftest import bridge_settings

pytestmark = pytest.mark.timeout(60)


def write_video(path: Path, frames: int = 20, fps: float = 50.0, size: int = 64) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    assert writer.isOpened()
    for i in range(frames):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 2] = 10 * i  # red channel (BGR order) encodes the frame index
        writer.write(img)
    writer.release()
    return path


def test_parse_source() -> None:
    assert parse_source("opencv:0") == 0
    assert parse_source("opencv:/tmp/a.avi") == "/tmp/a.avi"
    assert parse_source("opencv:rtsp://cam/1") == "rtsp://cam/1"
    for bad in ("0", "opencv:", "usb:0"):
        with pytest.raises(ValueError, match="opencv:"):
            parse_source(bad)


def test_video_file_camera_keeps_latest(tmp_path: Path) -> None:
    video = write_video(tmp_path / "cam.avi")
    cam = OpenCVCamera("side", f"opencv:{video}", size=32)
    cam.start()
    try:
        deadline = time.monotonic() + 5
        while cam.latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first = cam.latest()
        assert first is not None
        assert first.image.shape == (32, 32, 3) and first.image.dtype == np.uint8
        time.sleep(0.3)  # ~15 frames at 50 fps that nobody takes
        later = cam.latest()
        assert later is not None and later.t_capture > first.t_capture
        assert later.index > first.index
        assert cam.dropped >= 5, "frames overwritten before being taken are counted"
        assert later.image[..., 0].mean() == pytest.approx(10 * (later.index % 20), abs=6)
        time.sleep(0.5)  # the 20-frame file loops
        assert cam.captured > 20 and cam.failures == 0
    finally:
        cam.stop()


def test_missing_source_counts_failures() -> None:
    cam = OpenCVCamera("nope", "opencv:/nonexistent/video.avi")
    cam.start()
    time.sleep(0.2)
    cam.stop()
    assert cam.failures >= 1 and cam.latest() is None


def test_bridge_publishes_extra_camera(tmp_path: Path, run_bridge) -> None:
    video = write_video(tmp_path / "side.avi")
    settings = bridge_settings(camera_sources={"side": f"opencv:{video}"})
    run = run_bridge(settings, cameras=CameraSet(dict(settings.camera_sources), 96))
    time.sleep(0.3)
    assert run.cmd.send(StartDemo()).ok
    step = run.sub.wait_for(
        lambda: [d for d in run.sub.get("step") if "cam/side" in d.frames], timeout=5
    )[0]
    assert set(step.images()) == {"front", "wrist", "side"}
    assert step.images()["side"].shape == (96, 96, 3)
    frames = run.sub.wait_for(lambda: [d for d in run.sub.get("frame") if d.msg.camera == "side"])
    assert frames[0].array("image").shape == (96, 96, 3)
