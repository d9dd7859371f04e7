"""Every message that crosses a process boundary, defined once for both ends."""

from tandem.messages.arm import ArmReply, ArmRequest
from tandem.messages.base import (
    ACTION_DIM,
    SCHEMA_VERSION,
    ActionSource,
    ControlMode,
    EpisodeKind,
    FrameSpec,
    Message,
    Outcome,
    Sequencer,
)
from tandem.messages.bridge import (
    BridgeStatus,
    CameraFrame,
    EpisodeEvent,
    LoopTiming,
    PolicyInfo,
    SafetyEvent,
    StepRecord,
    Transition,
)
from tandem.messages.commands import (
    ClearEStop,
    Command,
    CommandBody,
    CommandReply,
    EndEpisode,
    EStop,
    HandBack,
    LabelEpisode,
    Ping,
    ResetDone,
    StartDemo,
    StartRollout,
    TakeOver,
    TeleopAction,
    command_adapter,
)
from tandem.messages.learner import LearnerMetrics, PolicyWeights

# Topic -> model. The wire codec accepts exactly these topics.
MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TOPIC: cls
    for cls in (
        StepRecord,
        EpisodeEvent,
        BridgeStatus,
        CameraFrame,
        Command,
        CommandReply,
        PolicyWeights,
        LearnerMetrics,
        ArmRequest,
        ArmReply,
    )
}

__all__ = [
    "ACTION_DIM",
    "MESSAGE_TYPES",
    "SCHEMA_VERSION",
    "ActionSource",
    "ArmReply",
    "ArmRequest",
    "BridgeStatus",
    "CameraFrame",
    "ClearEStop",
    "Command",
    "CommandBody",
    "CommandReply",
    "ControlMode",
    "EStop",
    "EndEpisode",
    "EpisodeEvent",
    "EpisodeKind",
    "FrameSpec",
    "HandBack",
    "LabelEpisode",
    "LearnerMetrics",
    "LoopTiming",
    "Message",
    "Outcome",
    "Ping",
    "PolicyInfo",
    "PolicyWeights",
    "ResetDone",
    "SafetyEvent",
    "Sequencer",
    "StartDemo",
    "StartRollout",
    "StepRecord",
    "TakeOver",
    "TeleopAction",
    "Transition",
    "command_adapter",
]
