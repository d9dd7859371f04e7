"""The device mapping the browser needs (``/api/teleop``), read from ``settings.teleop``.

The server maps device input to robot actions (``teleop.InputMapper``); the page
still has to know which gamepad button is the deadman (holding it during a
rollout takes over) and which buttons the mapping uses, so that it never claims
them for episode commands.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from server.deps import CurrentUser, SettingsDep
from server.responses import LOGIN

router = APIRouter(prefix="/api/teleop", tags=["teleop"], responses=LOGIN)


class TeleopMapping(BaseModel):
    """Buttons and keys of the server's input mapping (W3C standard gamepad indices)."""

    deadman_button: int = Field(description="Gamepad button held to move; in a rollout, take over.")
    gripper_button: int = Field(description="Gamepad button that drives the gripper.")
    gripper_mode: Literal["toggle", "hold"] = Field(description="How the gripper button acts.")
    keyboard_deadman_key: str | None = Field(
        description="KeyboardEvent.code held to move; None: any mapped key held moves."
    )
    xr_hand: Literal["right", "left"] = Field(description="The VR controller that drives.")
    unsure_threshold: float = Field(
        description="The policy is shown as unsure while the mean of its last unsure_window "
        "uncertainties is at or above this."
    )
    unsure_window: int = Field(description="Steps the unsure mean covers.")


@router.get("/mapping", response_model=TeleopMapping)
def mapping(user: CurrentUser, settings: SettingsDep) -> TeleopMapping:
    """The mapping of this server's settings; pages read it when they load."""
    teleop = settings.teleop
    return TeleopMapping(
        deadman_button=teleop.deadman_button,
        gripper_button=teleop.gripper_button,
        gripper_mode=teleop.gripper_mode,
        keyboard_deadman_key=teleop.keyboard_deadman_key,
        xr_hand=teleop.xr_hand,
        unsure_threshold=teleop.unsure_threshold,
        unsure_window=teleop.unsure_window,
    )
