"""The bridge's PUB socket: steps, episode events, status and live camera frames.

Sends never block: a full high-water mark drops the message and counts it.
Each topic has its own ``seq``; every message carries the publisher's ``epoch``, a
random id drawn once per process (``tandem.messages.Sequencer``), by which receivers
recognise a restarted bridge even when its first messages were missed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import zmq

from tandem import security, wire
from tandem.messages import BridgeStatus, CameraFrame, EpisodeEvent, Message, Sequencer, StepRecord

log = logging.getLogger(__name__)
CLOSE_LINGER_S = 1.0  # at shutdown, how long queued messages may still go out


class Publisher:
    def __init__(
        self, endpoint: str, context: zmq.Context, *, hwm: int = 1000, jpeg_quality: int = 90
    ) -> None:
        self._sock = context.socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.MAXMSGSIZE, wire.SMALL_MSG_BYTES)  # it receives subscriptions
        self.endpoint: str = security.bind(self._sock, endpoint)
        self._seq = Sequencer()
        self._quality = jpeg_quality
        self._frame_seq: dict[str, int] = {}
        self.dropped = 0
        self.sent = 0
        log.debug("publishing on %s (epoch %s)", self.endpoint, self._seq.epoch)

    def _send(self, msg: Message, images: Mapping[str, np.ndarray] | None = None) -> int:
        self._seq.stamp(msg)
        frames = {f"cam/{k}": v for k, v in (images or {}).items()}
        parts = wire.encode(msg, frames, jpeg=frames.keys(), jpeg_quality=self._quality)
        try:
            self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1
        return msg.seq

    def step(self, record: StepRecord, images: Mapping[str, np.ndarray]) -> int:
        """Publish a step with its camera frames ``cam/<name>`` (JPEG); return its seq."""
        return self._send(record, images)

    def episode(self, event: EpisodeEvent, images: Mapping[str, np.ndarray] | None = None) -> int:
        return self._send(event, images)

    def status(self, status: BridgeStatus) -> int:
        return self._send(status)

    def frames(self, robot_id: str, images: Mapping[str, np.ndarray], t_capture: float) -> None:
        """Keep-latest live frames, one ``CameraFrame`` (frame ``image``) per camera."""
        for name, image in images.items():
            n = self._frame_seq.get(name, 0)
            self._frame_seq[name] = n + 1
            msg = CameraFrame(robot_id=robot_id, camera=name, frame_seq=n, t_capture=t_capture)
            self._seq.stamp(msg)
            parts = wire.encode(msg, {"image": image}, jpeg=("image",), jpeg_quality=self._quality)
            try:
                self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.dropped += 1

    def close(self, linger_s: float = CLOSE_LINGER_S) -> None:
        """Close, first giving what is queued (the last steps, the end event) up to
        ``linger_s`` to reach the subscribers: a bridge that stops ends its episode and
        closes at once, and ``linger=0`` dropped that end under load."""
        self._sock.close(linger=int(linger_s * 1000))
