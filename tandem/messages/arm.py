"""Arm protocol: requests from the bridge to an arm-server and the server's replies.

See docs/arm_protocol.md. The bridge (a DEALER socket) sends one ``ArmRequest``
at a time and waits for the ``ArmReply`` with the same ``req_seq`` up to a
timeout. Camera images of the driver (if any) travel as raw frames
``cam/<name>`` (uint8, H x W x 3, RGB) after the reply header.
Positions are metres and rotations radians, in the robot base frame.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from tandem.messages.base import Message, finite_vector


def _vec3(values: list[float]) -> list[float]:
    return finite_vector(values, length=3, what="3-vector")


class ArmSpec(BaseModel):
    """What a driver offers; answered to ``hello``."""

    model_config = ConfigDict(extra="forbid")

    driver: str = Field(description="Driver name, e.g. sim:lift, mock, franka.")
    task: str | None = Field(None, description="Task name when the driver is a simulation.")
    state_dim: int = Field(ge=7, description="Length of the state vector.")
    cameras: dict[str, list[int]] = Field(
        default_factory=dict, description="Driver cameras: name -> [H, W, 3]."
    )
    max_translation_m: float = Field(gt=0, description="Largest accepted translation per step.")
    max_rotation_rad: float = Field(gt=0, description="Largest accepted rotation per step.")
    arm_timeout_s: float = Field(gt=0, description="Server stops the arm after this silence.")


class ArmState(BaseModel):
    """The arm's measured state.

    ``state`` starts with the 14 proprioceptive numbers (ee position 3, ee
    quaternion wxyz 4, gripper opening 1, ee linear velocity 3, ee angular
    velocity 3) followed by task features of a simulated driver.
    """

    model_config = ConfigDict(extra="forbid")

    ee_pos: list[float] = Field(description="End-effector position, m, base frame.")
    ee_quat: list[float] = Field(description="End-effector orientation, quaternion w, x, y, z.")
    gripper: float = Field(description="Gripper opening, 0 closed .. 1 open.")
    state: list[float] = Field(description="Full state vector (see class docstring).")
    reward: float = Field(0.0, description="Reward of the last applied action (sim drivers).")
    success: bool = Field(False, description="Task success after the last action (sim drivers).")
    stopped: bool = Field(False, description="The arm is stopped (stop or watchdog).")
    watchdog_trips: int = Field(0, ge=0, description="Times the server's watchdog stopped the arm.")
    last_stop_after_s: float | None = Field(
        None, description="Silence (s) after which the watchdog last stopped the arm."
    )
    t_state: float = Field(description="Server monotonic time of the measurement, s.")

    _c3 = field_validator("ee_pos")(_vec3)
    _c4 = field_validator("ee_quat")(lambda v: finite_vector(v, length=4, what="quaternion"))
    _cs = field_validator("state")(lambda v: finite_vector(v, what="state"))


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hello(_Req):
    type: Literal["hello"] = "hello"
    client: str = Field("bridge", max_length=200)


class GetState(_Req):
    type: Literal["get_state"] = "get_state"
    images: bool = Field(True, description="Send the driver's camera images as frames.")


class ApplyAction(_Req):
    """Move the end effector by a delta and set the gripper (one control step)."""

    type: Literal["apply_action"] = "apply_action"
    delta_pos_m: list[float] = Field(description="Translation, m, base frame.")
    delta_rot_rad: list[float] = Field(description="Rotation vector (axis * angle), rad.")
    gripper: float = Field(ge=-1.0, le=1.0, description="-1 open .. +1 closed.")

    _c1 = field_validator("delta_pos_m")(_vec3)
    _c2 = field_validator("delta_rot_rad")(_vec3)


class Home(_Req):
    type: Literal["home"] = "home"
    randomize: bool = Field(False, description="Randomise the scene (simulated drivers).")
    seed: int | None = None


class Stop(_Req):
    type: Literal["stop"] = "stop"


class Heartbeat(_Req):
    type: Literal["heartbeat"] = "heartbeat"


ArmRequestBody = Annotated[
    Hello | GetState | ApplyAction | Home | Stop | Heartbeat, Field(discriminator="type")
]
arm_request_adapter: TypeAdapter[ArmRequestBody] = TypeAdapter(ArmRequestBody)


class ArmRequest(Message):
    """One request to an arm-server; ``seq`` identifies it in the reply."""

    TOPIC: ClassVar[str] = "arm_req"

    body: ArmRequestBody


class ArmReply(Message):
    """The arm-server's answer; ``req_seq`` is the answered request's ``seq``."""

    TOPIC: ClassVar[str] = "arm_rep"

    req_seq: int = Field(ge=0)
    ok: bool
    error: str = ""
    spec: ArmSpec | None = None
    state: ArmState | None = None
