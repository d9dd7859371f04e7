"""Settings of the teleoperation mapping (gamepad, WebXR, keyboard).

Button indices follow the W3C "standard" gamepad mapping (0 A, 1 B, 2 X, 3 Y,
4 LB, 5 RB, 6 LT, 7 RT, 8 Back, 9 Start, 10/11 stick press, 12-15 d-pad up,
down, left, right, 16 Home). See docs/teleop.md for the full button and key maps.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TeleopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deadzone: float = Field(
        0.1, ge=0, lt=1, description="Gamepad stick radial deadzone (axis units); rescaled."
    )
    trigger_deadzone: float = Field(
        0.05, ge=0, lt=1, description="Gamepad analog trigger (LT/RT) deadzone; rescaled."
    )
    expo: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Gamepad stick expo curve: 0 linear, 1 cubic (finer control near centre).",
    )
    smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Exponential smoothing of gamepad/keyboard commands: weight of the previous "
        "output per input sample (0 = off).",
    )
    translation_scale: float = Field(
        1.0, gt=0, description="Gamepad stick to translation command gain (1 = full step)."
    )
    rotation_scale: float = Field(
        1.0, gt=0, description="Gamepad stick to rotation command gain (1 = full step)."
    )
    deadman_button: int = Field(
        5, ge=0, le=19, description="Gamepad button held to move (hold-to-move); 5 = RB."
    )
    gripper_button: int = Field(
        0, ge=0, le=19, description="Gamepad button that drives the gripper; 0 = A."
    )
    gripper_mode: Literal["toggle", "hold"] = Field(
        "toggle",
        description="Gamepad/keyboard gripper: 'toggle' flips open/closed on each press, "
        "'hold' closes while the button is held.",
    )
    keyboard_speed: float = Field(
        0.5, gt=0, le=1, description="Keyboard command per held key (fraction of a full step)."
    )
    keyboard_deadman_key: str | None = Field(
        None,
        max_length=32,
        description="KeyboardEvent.code held to move (e.g. 'ShiftLeft'); None: any mapped key "
        "held moves.",
    )
    xr_hand: Literal["right", "left"] = Field(
        "right", description="The VR controller that drives the robot."
    )
    xr_scale: float = Field(
        1.0, gt=0, description="Robot metres moved per metre of VR controller motion."
    )
    xr_rotation_scale: float = Field(
        1.0, gt=0, description="Robot rotation angle per radian of VR controller rotation."
    )
    xr_yaw_deg: float = Field(
        0.0,
        ge=-360,
        le=360,
        description="Yaw calibration, degrees about the vertical: the VR forward direction "
        "(-z) maps to robot +x rotated by this angle towards +y.",
    )
    xr_squeeze_threshold: float = Field(
        0.5,
        gt=0.1,
        le=1,
        description="Squeeze (grip) value that engages the VR clutch; it releases 0.1 below.",
    )
    xr_jump_m: float = Field(
        0.15, gt=0, description="A controller pose jump larger than this (metres) is rejected."
    )
    xr_jump_rad: float = Field(
        0.6,
        gt=0,
        description="A controller rotation jump larger than this (radians) between consecutive "
        "samples is rejected.",
    )
    lease_timeout_s: float = Field(
        5.0, gt=0, description="Control lease expires after this long without operator input."
    )
    unsure_threshold: float = Field(
        0.28,
        ge=0,
        allow_inf_nan=False,
        description="The operate page marks the policy 'unsure' while the mean of its last "
        "unsure_window per-step uncertainties (PolicyInfo.uncertainty) is at or above this "
        "(bench/uncertainty.py; a hint to take over).",
    )
    unsure_window: int = Field(
        5, ge=1, le=100, description="Steps the 'unsure' mean covers (operate page)."
    )
