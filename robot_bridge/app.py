"""Assemble a bridge from settings: backend, policy slot, cameras."""

from __future__ import annotations

import logging

import zmq

from robot_bridge.backend import RobotBackend
from robot_bridge.bridge import Bridge
from robot_bridge.cameras import CameraSet
from robot_bridge.factory import make_backend
from robot_bridge.policy import ExpertPolicy, PolicySlot
from robot_bridge.weights import LearnerPolicySlot
from tandem.settings import BridgeSettings

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The bridge settings ask for something this backend cannot give."""


def build_policy(kind: str, backend: RobotBackend, settings: BridgeSettings) -> PolicySlot:
    if kind == "learner":  # the learner's weights stream fills the slot (robot_bridge.weights)
        return LearnerPolicySlot(settings.weights_endpoint).start()
    slot = PolicySlot()
    if kind == "expert":
        expert = backend.expert()
        if expert is None:
            raise ConfigError(f"backend {backend.name} has no scripted expert")
        slot.load(ExpertPolicy(expert))
    return slot


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
