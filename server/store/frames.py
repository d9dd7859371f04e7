"""Single camera frames of a stored episode, as JPEG (for the replay view)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from server.store.errors import NotFoundError, StoreError
from tandem.episodes import CAM_PREFIX


def frame_jpeg(
    episode_dir: Path, episode_id: str, camera: str, step: int, quality: int = 90
) -> bytes:
    """JPEG of camera ``camera`` at step index ``step`` (0-based position in the episode).

    Reads the chunk files in order and decodes only the chunk that holds the step.
    """
    key = CAM_PREFIX + camera
    first = 0
    for chunk in sorted(episode_dir.glob("chunk_*.npz")):
        with np.load(chunk, allow_pickle=False) as data:
            if key not in data.files:
                raise NotFoundError(f"episode {episode_id!r} has no camera {camera!r}")
            n = int(data["step"].shape[0])
            if first <= step < first + n:
                return encode_jpeg(data[key][step - first], quality)
            first += n
    raise NotFoundError(f"episode {episode_id!r} has no step {step} (it has {first} on disk)")


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB (H, W, 3) or grey (H, W) uint8 image."""
    bgr = np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise StoreError("JPEG encoding failed")
    return buf.tobytes()
