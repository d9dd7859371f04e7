"""Settings of the teleoperation mapping (gamepad, WebXR, keyboard)."""

from pydantic import BaseModel, ConfigDict, Field


class TeleopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deadzone: float = Field(0.1, ge=0, lt=1, description="Gamepad stick deadzone (axis units).")
    translation_scale: float = Field(
        1.0, gt=0, description="Gamepad stick to translation command gain (1 = full step)."
    )
    rotation_scale: float = Field(
        1.0, gt=0, description="Gamepad stick to rotation command gain (1 = full step)."
    )
    xr_scale: float = Field(
        1.0, gt=0, description="Robot metres moved per metre of VR controller motion."
    )
    xr_jump_m: float = Field(
        0.15, gt=0, description="A controller pose jump larger than this (metres) is rejected."
    )
    lease_timeout_s: float = Field(
        5.0, gt=0, description="Control lease expires after this long without operator input."
    )
