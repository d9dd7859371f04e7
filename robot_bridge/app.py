"""Assemble a bridge from settings: backend, policy slot, cameras."""

from __future__ import annotations

import logging

import zmq

from robot_bridge.backend import RobotBackend
from robot_bridge.bridge import Bridge
from robot_bridge.cameras import CameraSet
from robot_bridge.factory import make_backend
from robot_bridge.policy import ExpertPolicy, Policy, PolicySlot
from robot_bridge.weights import LearnerPolicySlot, load_play_policy
from tandem.settings import BridgeSettings

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The bridge settings ask for something this backend cannot give."""


def build_policy(kind: str, backend: RobotBackend, settings: BridgeSettings) -> PolicySlot:
    if kind == "learner":  # the learner's weights stream fills the slot (robot_bridge.weights)
        return LearnerPolicySlot(settings.weights_endpoint).start()
    if kind == "expert":
        expert = backend.expert()
        if expert is None:
            raise ConfigError(f"backend {backend.name} has no scripted expert")
        slot = PolicySlot("expert")
        slot.load(ExpertPolicy(expert))
        return slot
    if kind == "play":
        slot = PolicySlot("play")
        slot.load(play_policy(backend, settings))
        return slot
    return PolicySlot()


def play_policy(backend: RobotBackend, settings: BridgeSettings) -> Policy:
    """The Proto-RL explorer of ``play_bundle`` ("let the robot play"): refused on a robot that
    is not simulated unless ``allow_play_on_real_arm``. Its actions take the same safety path
    as any policy's (validated, clipped to the per-step limits and the workspace box)."""
    if not backend.simulated and not settings.allow_play_on_real_arm:
        raise ConfigError(
            f"policy 'play' is refused on {backend.name}: the explorer seeks states it has not "
            "seen, which on a real arm includes unsafe ones; set "
            "bridge.allow_play_on_real_arm = true to enable it there"
        )
    assert settings.play_bundle is not None  # BridgeSettings checks it
    policy = load_play_policy(settings.play_bundle, backend.observation_spec)
    log.info("let the robot play: explorer %s on %s", settings.play_bundle, backend.name)
    return policy


def control_settings(settings: BridgeSettings) -> BridgeSettings:
    """``settings`` with the loop rate this robot runs at: ``sim_rate_hz`` for a sim robot."""
    if settings.sim_rate_hz is None or not settings.robot.startswith("sim:"):
        return settings
    if settings.sim_rate_hz != settings.rate_hz:
        log.info("simulated robot: control loop at %.3g Hz (sim_rate_hz; sim time 0.1 s/step)",
                 settings.sim_rate_hz)  # fmt: skip
    return settings.model_copy(update={"rate_hz": settings.sim_rate_hz})


def build_bridge(settings: BridgeSettings, context: zmq.Context | None = None) -> Bridge:
    """The bridge described by ``settings`` (not started)."""
    settings = control_settings(settings)
    backend = make_backend(settings.robot, settings)
    cameras = None
    if settings.camera_sources:
        cameras = CameraSet(dict(settings.camera_sources), settings.image_size)
    return Bridge(
        settings, backend, policy=build_policy(settings.policy, backend, settings), cameras=cameras,
        context=context,
    )  # fmt: skip
