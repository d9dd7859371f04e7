"""Honest figures: an episode a human finished is never counted as the policy's success."""

from __future__ import annotations

import numpy as np
import pytest

from learner.episode_arrays import EpisodeArrays
from learner.service.stats import EpisodeStats
from tandem.episodes import SOURCES, STEP_FIELDS
from tandem.messages import ActionSource, EpisodeKind, Outcome, episode_result


def episode(
    kind: EpisodeKind, *, human: list[int], success: bool, n: int = 10, ep_id: str = "e"
) -> EpisodeArrays:
    """``n`` steps; the steps in ``human`` were driven by a person; success on the last one."""
    steps = {
        name: np.zeros((n, *((17,) if shape is None else shape)), dtype)
        for name, (dtype, shape) in STEP_FIELDS.items()
    }
    steps["step"] = np.arange(n, dtype=np.int32)
    steps["intervention"] = np.isin(np.arange(n), human)
    sources = [ActionSource.HUMAN if i in human else ActionSource.POLICY for i in range(n)]
    steps["action_source"] = np.array([SOURCES.index(src) for src in sources], np.uint8)
    steps["success"][-1] = success
    steps["reward"][-1] = 1.0 if success else 0.0
    return EpisodeArrays(
        "robot0", ep_id, kind, steps, num_steps=n, ended=True,
        outcome=Outcome.SUCCESS if success else None, terminated=success,
    )  # fmt: skip


def test_an_assisted_success_is_not_an_autonomous_success() -> None:
    stats = EpisodeStats(window=10)
    # The live-loop report of issue 12: every rollout needed a take-over, a human finished it.
    for i in range(3):
        stats.add(
            episode(EpisodeKind.ROLLOUT, human=[5, 6, 7, 8, 9], success=True, ep_id=f"r{i}"), 1
        )
    m = stats.metrics()
    assert m["episode/autonomous_success_rate"] == 0.0
    assert m["episode/assisted_success_rate"] == 1.0
    assert m["hil/intervention_rate"] == pytest.approx(0.5)
    assert "episode/success_rate" not in m  # the figure that mixed both is gone

    stats.add(episode(EpisodeKind.ROLLOUT, human=[], success=True, ep_id="alone"), 0)
    m = stats.metrics()
    assert m["episode/autonomous_success_rate"] == pytest.approx(0.25)
    assert m["episode/assisted_success_rate"] == pytest.approx(0.75)
    assert m["hil/intervention_rate"] == pytest.approx(1.5 / 4)


def test_failures_demos_and_evaluations_are_kept_apart() -> None:
    stats = EpisodeStats(window=10)
    stats.add(episode(EpisodeKind.DEMO, human=list(range(10)), success=True, ep_id="d"), 0)
    stats.add(episode(EpisodeKind.ROLLOUT, human=[], success=False, ep_id="f"), 0)
    stats.add(episode(EpisodeKind.EVALUATION, human=[], success=True, ep_id="ev1"), 0)
    stats.add(episode(EpisodeKind.EVALUATION, human=[3], success=True, ep_id="ev2"), 1)
    m = stats.metrics()
    assert m["episode/autonomous_success_rate"] == 0.0  # the demo and evaluations do not count
    assert m["episode/assisted_success_rate"] == 0.0
    assert m["data/demo_episodes"] == 1 and m["data/rollout_episodes"] == 1
    assert m["data/eval_episodes"] == 2
    assert m["eval/autonomous_success_rate"] == pytest.approx(0.5)  # human in eval: failure


def test_rolling_window() -> None:
    stats = EpisodeStats(window=2)
    assert stats.metrics()["episode/autonomous_success_rate"] is None  # no value yet
    for i, ok in enumerate([True, False, False]):
        stats.add(episode(EpisodeKind.ROLLOUT, human=[], success=ok, ep_id=f"w{i}"), 0)
    assert stats.metrics()["episode/autonomous_success_rate"] == 0.0


@pytest.mark.parametrize(
    ("kind", "success", "human", "expected"),
    [
        (EpisodeKind.ROLLOUT, True, 0, "autonomous_success"),
        (EpisodeKind.ROLLOUT, True, 3, "assisted_success"),
        (EpisodeKind.ROLLOUT, False, 0, "failure"),
        (EpisodeKind.ROLLOUT, False, 3, "failure"),
        (EpisodeKind.EVALUATION, True, 0, "autonomous_success"),
        (EpisodeKind.EVALUATION, True, 1, "failure"),
        (EpisodeKind.DEMO, True, 10, None),
    ],
)
def test_episode_result(kind: EpisodeKind, success: bool, human: int, expected: str | None) -> None:
    assert episode_result(kind, success, human) == expected
