"""Settings of the robot bridge: control loop, safety limits, endpoints."""

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BridgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    robot: str = Field(
        "sim:lift",
        description="Robot backend: sim:lift, sim:drawer, mock, or zmq://HOST:PORT for a real arm.",
    )
    robot_id: str = Field(
        "robot0", min_length=1, description="Name of this robot in steps, episodes and the UI."
    )
    rate_hz: float = Field(10.0, gt=0, le=1000, description="Control loop rate in Hz.")
    sim_rate_hz: float | None = Field(
        None,
        gt=0,
        le=200,
        description="Control loop rate of a simulated robot (sim:*) in Hz; None = rate_hz. The "
        "simulation advances 0.1 s per step whatever the rate, so 30 runs it 3x faster than "
        "real time (a policy is seen learning sooner); other robots always run at rate_hz.",
    )
    cameras: list[str] = Field(
        default_factory=lambda: ["front", "wrist"], description="Camera names to publish."
    )
    image_size: int = Field(96, ge=16, le=1024, description="Square camera resolution in pixels.")
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of live frames.")
    horizon: int = Field(200, ge=1, description="Episode time limit in control steps.")
    pub_endpoint: str = Field(
        "tcp://127.0.0.1:5555", description="ZMQ PUB endpoint for steps, status and frames."
    )
    cmd_endpoint: str = Field(
        "tcp://127.0.0.1:5556", description="ZMQ endpoint where the bridge takes commands."
    )
    weights_endpoint: str = Field(
        "tcp://127.0.0.1:5561", description="Learner's ZMQ PUB endpoint for policy weights."
    )
    watchdog_s: float = Field(
        0.25, gt=0, description="Teleop input older than this (seconds) is not applied."
    )
    max_translation_m: float = Field(
        0.05, gt=0, description="Per-step end-effector translation limit in metres."
    )
    max_rotation_rad: float = Field(
        0.2, gt=0, description="Per-step end-effector rotation limit in radians."
    )
    workspace_low: list[float] = Field(
        default_factory=lambda: [0.25, -0.35, 0.0],
        min_length=3,
        max_length=3,
        description="Lower corner (x, y, z, metres, robot base frame) of the workspace box.",
    )
    workspace_high: list[float] = Field(
        default_factory=lambda: [0.8, 0.35, 0.5],
        min_length=3,
        max_length=3,
        description="Upper corner (x, y, z, metres, robot base frame) of the workspace box.",
    )
    realtime: bool = Field(
        False, description="Ask for SCHED_FIFO real-time priority for the control loop."
    )
    arm_timeout_s: float = Field(
        0.5, gt=0, description="Arm-server stops the arm after this long without a command."
    )
    arm_bind: str = Field(
        "tcp://127.0.0.1:5570", description="Endpoint the arm-server binds (tandem arm-server)."
    )
    arm_request_timeout_s: float = Field(
        0.05, gt=0, le=1, description="Bridge gives up on one arm-server request after this long."
    )
    link_timeout_s: float = Field(
        0.5, gt=0, le=5, description="No arm-server reply for this long: link lost, go to estop."
    )
    camera_sources: dict[str, str] = Field(
        default_factory=dict,
        description="Extra cameras by name, e.g. {side = 'opencv:0'}; a backend camera's name "
        "replaces that camera.",
    )
    policy: Literal["none", "expert", "learner", "play"] = Field(
        "none",
        description="Policy in the slot at start: none, the backend's scripted expert, "
        "learner (weights from the learner at weights_endpoint), or play (the Proto-RL "
        "explorer of play_bundle: 'let the robot play').",
    )
    play_bundle: str | None = Field(
        None,
        description="The explorer policy bundle that tandem pretrain writes "
        "(RUN/explorer.safetensors); required by policy = 'play'.",
    )
    allow_play_on_real_arm: bool = Field(
        False,
        description="Let the explorer act on a robot reached over ZeroMQ (a real arm). Off: "
        "policy = 'play' is refused there; it always runs on sim and mock robots.",
    )
    realtime_priority: int = Field(
        10, ge=1, le=99, description="SCHED_FIFO priority used when realtime is on."
    )
    seed: int | None = Field(None, description="Seed of the first episode's reset (then +1 each).")
    eval_seed: int | None = Field(
        1_000_000,
        description=(
            "The i-th episode of every evaluation batch resets with seed eval_seed + i - 1, "
            "so that batches are scored on the same scenes (a simulator honours it; a real "
            "arm's scene is whatever the operator set up). None: fresh scenes each batch."
        ),
    )
    randomize_reset: bool = Field(True, description="Randomise the scene when an episode starts.")
    next_episode_on_reset: bool = Field(
        True,
        description="reset_done starts the next episode of the same kind (false: go to idle).",
    )
    status_period_s: float = Field(
        0.5, gt=0, le=1, description="Bridge status is published at least this often (seconds)."
    )
    pub_hwm: int = Field(
        1000, ge=1, description="High-water mark (messages) of the PUB socket; beyond it we drop."
    )

    @model_validator(mode="after")
    def _play_needs_a_bundle(self) -> Self:
        if self.policy == "play" and not self.play_bundle:
            raise ValueError(
                "policy = 'play' needs play_bundle: the explorer that tandem pretrain writes "
                "(RUN/explorer.safetensors)"
            )
        return self
