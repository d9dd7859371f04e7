"""Device input of the lease holder: mapped by ``teleop.InputMapper``, forwarded keep-latest.

Input that would move the robot while its last reported mode is not teleop or
intervention is not forwarded (the bridge would refuse it): the client gets an
``error`` saying why, at most once a second.
"""

from __future__ import annotations

import logging
import time

from server.control.client import ControlClient, forward, not_holding
from tandem.messages import ControlMode
from tandem.messages.control import ErrorReply, GamepadInput, KeyboardInput, XREvent, XRInput
from teleop import EEPose, MappedInput

log = logging.getLogger(__name__)

INPUT_REFUSED_EVERY_S = 1.0
HUMAN_DRIVEN = {ControlMode.TELEOP, ControlMode.INTERVENTION}
# What to do about input refused in each mode, for the operator.
MODE_HINTS = {
    ControlMode.IDLE: "press Start demo to drive",
    ControlMode.ROLLOUT: "hold Take over to drive",
    ControlMode.AWAIT_RESET: "label the episode, then press Reset done",
    ControlMode.ESTOP: "clear the e-stop first",
}


DeviceInput = GamepadInput | KeyboardInput | XRInput | XREvent


def handle_input(client: ControlClient, msg: DeviceInput) -> None:
    leases = client.state.leases
    if not leases.touch(client.key, client.id):
        if isinstance(msg, XREvent):
            client.mapper.on_xr_event(msg)  # safety releases apply even without the lease
        not_holding(client, msg.seq)
        return
    mapped = _map(client, msg)
    t_input = client.clock.local(msg.t_input / 1000.0, time.monotonic())
    if mapped.action is None and not client.driving:
        return
    if mapped.action is not None and _refusehandle_input(client, msg.seq):
        return
    forward(client, mapped.action, t_input, msg.seq)


def _refusehandle_input(client: ControlClient, seq: int) -> bool:
    """True when the robot's last reported mode refuses teleop input; tells the client why
    (at most once per ``INPUT_REFUSED_EVERY_S``). Without a status the bridge decides."""
    status = client.state.link.status(client.robot)
    if status is None or status.mode in HUMAN_DRIVEN:
        return False
    now = time.monotonic()
    if now - client.last_input_refused >= INPUT_REFUSED_EVERY_S:
        client.last_input_refused = now
        mode = status.mode
        hint = MODE_HINTS.get(mode, "the robot only moves in teleop or intervention")
        message = f"input refused: the robot is in {mode.value.replace('_', ' ')}; {hint}"
        client.send(ErrorReply(message=message, ref_seq=seq))
    return True


def _map(client: ControlClient, msg: DeviceInput) -> MappedInput:
    mapper = client.mapper
    if isinstance(msg, GamepadInput):
        return mapper.on_gamepad(msg)
    if isinstance(msg, KeyboardInput):
        return mapper.on_keyboard(msg)
    if isinstance(msg, XREvent):
        return mapper.on_xr_event(msg)
    return mapper.on_xr(msg, _ee_pose(client))


def _ee_pose(client: ControlClient) -> EEPose | None:
    """The measured end-effector position from the bridge's latest status (no orientation)."""
    status = client.state.link.status(client.robot)
    if status is None or status.ee_pos is None or len(status.ee_pos) != 3:
        return None
    x, y, z = status.ee_pos
    try:
        return EEPose((x, y, z))
    except ValueError:
        return None
