"""Real cameras: OpenCV ``VideoCapture`` sources read in background threads, keep-latest.

A source is ``opencv:<index|path|url>``. A video file is replayed at its own
frame rate and looped, which is how tests exercise this path. ``dropped``
counts frames that were overwritten before the control loop took them;
``failures`` counts failed reads.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)
_RETRY_S = 0.5


@dataclass(frozen=True)
class CameraImage:
    image: np.ndarray  # uint8 H x W x 3, RGB
    t_capture: float  # monotonic seconds
    index: int  # frames captured so far by this camera, 0-based


def parse_source(source: str) -> int | str:
    """``opencv:0`` -> 0, ``opencv:/path.mp4`` -> '/path.mp4'; raise ValueError otherwise."""
    if not source.startswith("opencv:") or len(source) == len("opencv:"):
        raise ValueError(f"camera source {source!r} must be opencv:<index|path|url>")
    rest = source.removeprefix("opencv:")
    return int(rest) if rest.isdigit() else rest


class OpenCVCamera:
    """One ``VideoCapture`` in a daemon thread; ``latest`` never blocks."""

    def __init__(self, name: str, source: str, size: int | None = None) -> None:
        self.name = name
        self.source = parse_source(source)
        self.size = size
        self._is_file = isinstance(self.source, str) and Path(self.source).is_file()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: CameraImage | None = None
        self._taken = True
        self.captured = 0
        self.dropped = 0
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def latest(self) -> CameraImage | None:
        """The newest frame (the same one again if nothing newer arrived), or None before any."""
        with self._lock:
            self._taken = True
            return self._latest

    def _run(self) -> None:
        while not self._stop.is_set():
            cap = cv2.VideoCapture(self.source)
            if not cap.isOpened():
                self.failures += 1
                log.warning("camera %s: cannot open %r; retrying", self.name, self.source)
                self._stop.wait(_RETRY_S)
                continue
            try:
                self._read_loop(cap)
            finally:
                cap.release()

    def _read_loop(self, cap: cv2.VideoCapture) -> None:
        fps = cap.get(cv2.CAP_PROP_FPS) if self._is_file else 0.0
        period = 1.0 / fps if fps and fps > 0 else 0.0
        next_t = time.monotonic()
        while not self._stop.is_set():
            ok, frame = cap.read()
            if not ok:
                if self._is_file and self.captured > 0:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the file
                    continue
                self.failures += 1
                log.warning("camera %s: read failed; reopening", self.name)
                self._stop.wait(_RETRY_S)
                return
            self._store(frame)
            if period:  # a file plays at its own rate, like a camera would
                next_t += period
                self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _store(self, frame_bgr: np.ndarray) -> None:
        t = time.monotonic()
        if self.size is not None and frame_bgr.shape[:2] != (self.size, self.size):
            frame_bgr = cv2.resize(frame_bgr, (self.size, self.size), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        with self._lock:
            if not self._taken:
                self.dropped += 1
            self._latest = CameraImage(rgb, t, self.captured)
            self._taken = False
            self.captured += 1


class CameraSet:
    """The bridge's own cameras by name."""

    def __init__(self, sources: dict[str, str], size: int | None) -> None:
        self.cameras = {name: OpenCVCamera(name, src, size) for name, src in sources.items()}

    def start(self) -> None:
        for cam in self.cameras.values():
            cam.start()

    def stop(self) -> None:
        for cam in self.cameras.values():
            cam.stop()

    def latest(self) -> dict[str, CameraImage]:
        out = {}
        for name, cam in self.cameras.items():
            img = cam.latest()
            if img is not None:
                out[name] = img
        return out
