"""Shared helpers of the store tests: synthetic steps, a loopback bridge publisher, waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zmq

from server.store import EpisodeStore
from tandem.episodes import EpisodeMeta, EpisodeWriter, StepData
from tandem.messages import (
    ActionSource,
    BridgeStatus,
    ControlMode,
    EpisodeEvent,
    EpisodeKind,
    Outcome,
    Sequencer,
    StepRecord,
)
from tandem.wire import send

STATE_DIM = 9
CAMS = ("front", "wrist")


def image(step: int, cam_index: int, size: int = 96) -> np.ndarray:
    """A smooth, step-dependent RGB image (survives JPEG with small error)."""
    ys, xs = np.mgrid[0:size, 0:size]
    r = (xs * 2 + step * 7) % 256
    g = (ys * 2 + cam_index * 60) % 256
    b = np.full_like(xs, (step * 13 + cam_index * 90) % 256)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def state(step: int) -> np.ndarray:
    return (np.arange(STATE_DIM, dtype=np.float32) + step) / 100.0


def action(step: int) -> list[float]:
    return [float(np.sin(step + i)) * 0.5 for i in range(7)]


def step_data(
    step: int, *, intervention: bool = False, reward: float = 0.0, success: bool = False
) -> StepData:
    return StepData(
        state=state(step),
        action=np.asarray(action(step), np.float32),
        images={cam: image(step, i) for i, cam in enumerate(CAMS)},
        reward=reward,
        success=success,
        intervention=intervention,
        action_source=ActionSource.HUMAN if intervention else ActionSource.POLICY,
        step=step,
        t_wall=time.time(),
    )


def write_episode(
    store: EpisodeStore,
    episode_id: str,
    *,
    robot: str = "robot0",
    kind: EpisodeKind = EpisodeKind.DEMO,
    n: int = 5,
    operator: str | None = "alice",
    outcome: Outcome | None = Outcome.SUCCESS,
    started: float | None = None,
    interventions: tuple[int, int] | None = None,
    finish: bool = True,
    success: bool = True,
    extra: dict[str, object] | None = None,
    task: str | None = None,
) -> Path:
    """Write an episode the way the recorder does (row at start, files, row at end)."""
    meta = EpisodeMeta(
        robot_id=robot,
        episode_id=episode_id,
        kind=kind,
        cameras=list(CAMS),
        image_shape=[96, 96, 3],
        state_dim=STATE_DIM,
        operator=operator,
        started_wall=started if started is not None else time.time(),
        extra=extra or {},
        task=task,
    )
    store.begin_episode(meta)
    writer = EpisodeWriter(store.episodes_root, meta)
    for i in range(n):
        human = interventions is not None and interventions[0] <= i < interventions[1]
        last = success and i == n - 1
        writer.append(step_data(i, intervention=human, reward=float(last), success=last))
    writer.flush()
    if not finish:
        return writer.dir
    final = {"state": state(n), **{f"cam_{c}": image(n, i) for i, c in enumerate(CAMS)}}
    path = writer.finish(final, outcome=outcome, terminated=True, end_reason="success")
    store.finish_episode(writer.meta)
    return path


def wait_until(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class FakeBridge:
    """Publishes steps and episode events like a bridge, on a loopback PUB socket."""

    def __init__(self, robot_id: str = "robot0", *, context: zmq.Context | None = None) -> None:
        self.robot_id = robot_id
        self.sock = (context or zmq.Context.instance()).socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.seq = Sequencer()

    def close(self) -> None:
        self.sock.close()

    def status(self) -> None:
        msg = BridgeStatus(
            seq=self.seq.next("status"),
            robot_id=self.robot_id,
            robot="sim:lift",
            mode=ControlMode.IDLE,
        )
        send(self.sock, msg)

    def wait_connected(self, store: EpisodeStore, timeout: float = 10.0) -> None:
        """Publish status until the recorder has seen it (ZMQ subscriptions are slow to join)."""
        from sqlalchemy import select

        from server.db.models import Robot

        def seen() -> bool:
            self.status()
            with store.session() as s:
                robot = s.scalar(select(Robot).where(Robot.id == self.robot_id))
                return robot is not None and robot.spec == "sim:lift"

        wait_until(seen, timeout, f"recorder to see bridge {self.robot_id}")

    def start(self, episode_id: str, kind: EpisodeKind = EpisodeKind.DEMO) -> None:
        self.event(episode_id, "start", kind)

    def event(
        self, episode_id: str, event: str, kind: EpisodeKind = EpisodeKind.DEMO, **fields: object
    ) -> None:
        frames = fields.pop("frames", None)
        msg = EpisodeEvent(
            seq=self.seq.next("episode"),
            robot_id=self.robot_id,
            episode_id=episode_id,
            episode_kind=kind,
            event=event,
            **fields,
        )
        send(self.sock, msg, frames, jpeg=list(frames or {}))

    def step(
        self,
        episode_id: str,
        step: int,
        *,
        kind: EpisodeKind = EpisodeKind.DEMO,
        seq: int | None = None,
        intervention: bool = False,
        reward: float = 0.0,
    ) -> None:
        rec = StepRecord(
            seq=self.seq.next("step") if seq is None else seq,
            robot_id=self.robot_id,
            episode_id=episode_id,
            episode_kind=kind,
            step=step,
            mode=ControlMode.TELEOP if kind == EpisodeKind.DEMO else ControlMode.ROLLOUT,
            state=state(step).tolist(),
            action=action(step),
            action_source=ActionSource.HUMAN if intervention else ActionSource.POLICY,
            intervention=intervention,
            reward=reward,
            t_obs=time.monotonic(),
        )
        frames = {f"cam/{cam}": image(step, i) for i, cam in enumerate(CAMS)}
        send(self.sock, rec, frames, jpeg=list(frames))

    def end(
        self,
        episode_id: str,
        n: int,
        *,
        kind: EpisodeKind = EpisodeKind.DEMO,
        outcome: Outcome | None = Outcome.SUCCESS,
        reason: str = "success",
    ) -> None:
        frames = {f"cam/{cam}": image(n, i) for i, cam in enumerate(CAMS)}
        self.event(
            episode_id,
            "end",
            kind,
            reason=reason,
            outcome=outcome,
            num_steps=n,
            terminated=reason == "success",
            truncated=reason == "time_limit",
            final_state=state(n).tolist(),
            frames=frames,
        )

    def episode(
        self,
        episode_id: str,
        n: int,
        *,
        kind: EpisodeKind = EpisodeKind.DEMO,
        rate_hz: float | None = None,
        **end: object,
    ) -> None:
        self.start(episode_id, kind)
        for i in range(n):
            self.step(episode_id, i, kind=kind, reward=1.0 if i == n - 1 else 0.0)
            if rate_hz:
                time.sleep(1.0 / rate_hz)
        self.end(episode_id, n, kind=kind, **end)  # type: ignore[arg-type]
