"""Evaluation-batch fields of the boundary messages: precise refusals, additive defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tandem import wire
from tandem.messages import (
    BridgeStatus,
    Command,
    ControlMode,
    EpisodeEvent,
    EpisodeKind,
    EvalProgress,
    StartEval,
)
from tandem.messages.control import ControlProtocolError, parse_client_message


def test_start_eval_needs_a_sane_batch_size() -> None:
    assert StartEval(episodes=10).episodes == 10
    for bad in (0, -1, 1001):
        with pytest.raises(ValidationError, match="episodes"):
            StartEval(episodes=bad)
    decoded = wire.decode(wire.encode(Command(body=StartEval(episodes=3, operator="ann"))))
    assert isinstance(decoded.msg, Command) and decoded.msg.body == StartEval(
        episodes=3, operator="ann"
    )


def test_browser_command_episodes_only_for_start_eval() -> None:
    msg = parse_client_message('{"type": "command", "name": "start_eval", "episodes": 5}')
    assert msg.episodes == 5  # type: ignore[union-attr]
    cases = {
        '{"type": "command", "name": "start_eval"}': "start_eval needs 'episodes'",
        '{"type": "command", "name": "start_rollout", "episodes": 2}': "only for start_eval",
        '{"type": "command", "name": "start_eval", "episodes": 0}': "episodes: Input should be",
        '{"type": "command", "name": "start_eval", "episodes": 2.5}': "episodes",
    }
    for text, why in cases.items():
        with pytest.raises(ControlProtocolError, match=why):
            parse_client_message(text)


def test_new_fields_are_optional_and_travel() -> None:
    old = EpisodeEvent(robot_id="r", episode_id="e", episode_kind=EpisodeKind.ROLLOUT, event="end")
    assert (old.weights_version, old.eval_batch, old.eval_index) == (None, None, None)
    event = EpisodeEvent(
        robot_id="r", episode_id="e", episode_kind=EpisodeKind.EVALUATION, event="end",
        reason="take_over", outcome="failure", weights_version=4, eval_batch="b", eval_index=2,
    )  # fmt: skip
    back = wire.decode(wire.encode(event)).msg
    assert back == event
    status = BridgeStatus(
        robot_id="r", robot="sim:lift", mode=ControlMode.ROLLOUT,
        eval=EvalProgress(batch="b", total=3, done=1, successes=1, auto_reset=True),
    )  # fmt: skip
    assert wire.decode(wire.encode(status)).msg == status
    assert BridgeStatus(robot_id="r", robot="mock", mode=ControlMode.IDLE).eval is None
