"""Synthetic bridge messages for the learner-service tests."""

from __future__ import annotations

import numpy as np
import zmq

from tandem.messages import EpisodeEvent, EpisodeKind, Outcome, PolicyInfo, StepRecord
from tandem.wire import encode

STATE_DIM = 5
CAMS = ("front",)
IMG = (8, 8, 3)


def step(
    robot: str,
    episode: str,
    t: int,
    *,
    seq: int,
    kind: EpisodeKind = EpisodeKind.ROLLOUT,
    intervention: bool = False,
    reward: float = 0.0,
    terminated: bool = False,
    truncated: bool = False,
    proposal: str | None = None,
) -> tuple[StepRecord, dict[str, np.ndarray]]:
    """Step ``t``: state = [t, robot hash, ...] so tests can tell where a frame came from."""
    state = [float(t), float(hash(robot) % 97), 0.0, 0.0, 0.0]
    rec = StepRecord(
        seq=seq,
        robot_id=robot,
        episode_id=episode,
        episode_kind=kind,
        step=t,
        mode="intervention" if intervention else ("teleop" if kind == "demo" else "rollout"),
        state=state,
        action=[0.1 * (t % 10)] * 7,
        human_action=[0.5] * 7 if intervention else None,
        action_source="human" if intervention else "policy",
        intervention=intervention,
        reward=reward,
        success=terminated,
        terminated=terminated,
        truncated=truncated,
        t_obs=float(t),
        policy_info=PolicyInfo(proposal=proposal) if proposal else None,
    )
    return rec, {c: np.full(IMG, t % 255, np.uint8) for c in CAMS}


def end(
    robot: str,
    episode: str,
    num_steps: int,
    *,
    seq: int,
    kind: EpisodeKind = EpisodeKind.ROLLOUT,
    outcome: Outcome | None = None,
    terminated: bool = False,
) -> tuple[EpisodeEvent, dict[str, np.ndarray]]:
    msg = EpisodeEvent(
        seq=seq,
        robot_id=robot,
        episode_id=episode,
        episode_kind=kind,
        event="end",
        reason="success" if terminated else "time_limit",
        outcome=outcome,
        num_steps=num_steps,
        terminated=terminated,
        truncated=not terminated,
        final_state=[float(num_steps), float(hash(robot) % 97), 0.0, 0.0, 0.0],
    )
    return msg, {c: np.full(IMG, num_steps % 255, np.uint8) for c in CAMS}


def start(
    robot: str, episode: str, *, seq: int, kind: EpisodeKind = EpisodeKind.ROLLOUT
) -> tuple[EpisodeEvent, dict[str, np.ndarray]]:
    msg = EpisodeEvent(
        seq=seq, robot_id=robot, episode_id=episode, episode_kind=kind, event="start"
    )
    return msg, {}


class Bridge:
    """A stand-in bridge: an XPUB the ingest subscribes to."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def wait_subscribed(self) -> None:
        for _ in range(2):  # the step and episode topics
            assert self.sock.poll(10_000), "ingest never subscribed"
            self.sock.recv()

    def send(self, msgs: list) -> None:
        for msg, images in msgs:
            self.sock.send_multipart(encode(msg, {f"cam/{k}": v for k, v in images.items()}))
