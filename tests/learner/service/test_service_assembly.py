"""Episode assembly and routing: transitions per robot and episode, gaps, ends, routing."""

from __future__ import annotations

import numpy as np

from learner.service.assembly import EpisodeAssembler
from learner.service.routing import apply_rlif, route
from tandem.messages import EpisodeKind, Outcome
from tests.learner.service.helpers import end, start, step


def _run(assembler, robot, episode, n, *, skip=(), terminated=False, **kw):
    finished = []
    finished += assembler.on_event(*start(robot, episode, seq=0, kind=kw.get("kind", "rollout")))
    for t in range(n):
        if t in skip:
            continue
        rec, imgs = step(robot, episode, t, seq=t, terminated=terminated and t == n - 1, **kw)
        finished += assembler.on_step(rec, imgs)
    finished += assembler.on_event(
        *end(robot, episode, n, seq=1, terminated=terminated, kind=kw.get("kind", "rollout"))
    )
    return finished


def test_complete_episode_is_one_segment_with_final_observation():
    eps = _run(EpisodeAssembler(), "r0", "e0", 5, terminated=True)
    assert len(eps) == 1
    (seg,) = eps[0].segments()
    assert len(seg) == 5
    assert seg.states.shape == (6, 5) and seg.images["front"].shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(seg.states[:, 0], np.arange(6))  # final obs from the end event
    assert seg.terminated
    np.testing.assert_array_equal(seg.steps, np.arange(5))


def test_time_limit_is_truncation_not_termination():
    (ep,) = _run(EpisodeAssembler(), "r0", "e0", 4)
    (seg,) = ep.segments()
    assert not seg.terminated and seg.truncated and len(seg) == 4


def test_gap_never_produces_a_spanning_transition():
    (ep,) = _run(EpisodeAssembler(), "r0", "e0", 10, skip={4})
    segs = ep.segments()
    assert [list(s.steps) for s in segs] == [[0, 1, 2], [5, 6, 7, 8, 9]]
    # The first segment ends at the last observation before the gap (obs 3), action 3 dropped.
    np.testing.assert_array_equal(segs[0].states[:, 0], [0, 1, 2, 3])
    assert all(s.truncated for s in segs)
    for s in segs:  # every transition's next observation is the next step's observation
        np.testing.assert_array_equal(s.states[1:, 0] - s.states[:-1, 0], np.ones(len(s)))


def test_missing_last_step_drops_final_observation():
    (ep,) = _run(EpisodeAssembler(), "r0", "e0", 6, skip={5})
    (seg,) = ep.segments()
    assert list(seg.steps) == [0, 1, 2, 3] and seg.states[-1, 0] == 4


def test_interleaved_robots_and_episodes_never_mix():
    asm = EpisodeAssembler()
    finished = []
    for r in ("a", "b"):
        asm.on_event(*start(r, f"{r}-ep", seq=0))
    for t in range(6):
        for r in ("a", "b"):
            finished += asm.on_step(*step(r, f"{r}-ep", t, seq=t))
    for r in ("a", "b"):
        finished += asm.on_event(*end(r, f"{r}-ep", 6, seq=1))
    assert sorted(e.robot_id for e in finished) == ["a", "b"]
    for ep in finished:
        (seg,) = ep.segments()
        robot_tag = float(hash(ep.robot_id) % 97)
        assert np.all(seg.states[:, 1] == robot_tag)
        assert len(seg) == 6


def test_new_episode_without_end_supersedes_and_late_steps_dropped():
    asm = EpisodeAssembler()
    for t in range(3):
        asm.on_step(*step("r", "e1", t, seq=t))
    finished = asm.on_step(*step("r", "e2", 0, seq=3))
    assert [e.episode_id for e in finished] == ["e1"] and finished[0].end_reason == "superseded"
    assert asm.on_step(*step("r", "e1", 3, seq=4)) == []
    assert asm.stats.late_steps == 1
    asm.on_step(*step("r", "e2", 0, seq=5))  # repeated step index
    assert asm.stats.late_steps == 2


def test_routing_by_source():
    asm = EpisodeAssembler()
    (demo,) = _run(asm, "r", "d", 5, kind=EpisodeKind.DEMO, terminated=True)
    demo.outcome = Outcome.SUCCESS
    routed = route(demo, demos_require_success=True, rlif_penalty=None)
    assert len(routed.demo) == 1 and not routed.online and not routed.intervention

    asm.on_event(*start("r", "x", seq=2))
    flags = [False, False, True, True, False, True, False]
    for t, f in enumerate(flags):
        asm.on_step(*step("r", "x", t, seq=10 + t, intervention=f))
    (roll,) = asm.on_event(*end("r", "x", len(flags), seq=3))
    routed = route(roll, demos_require_success=True, rlif_penalty=None)
    assert sum(len(s) for s in routed.online) == len(flags)
    assert [list(s.steps) for s in routed.intervention] == [[2, 3], [5]]
    assert all(s.intervention.all() for s in routed.intervention)
    # An intervention segment ends with the observation after its last human step.
    assert routed.intervention[0].states[-1, 0] == 4


def test_discarded_and_failed_demos():
    (ep,) = _run(EpisodeAssembler(), "r", "d", 4, kind=EpisodeKind.DEMO)
    ep.outcome = Outcome.DISCARD
    assert route(ep, demos_require_success=True, rlif_penalty=None).dropped_reason == "discarded"
    ep.outcome = Outcome.FAILURE
    routed = route(ep, demos_require_success=True, rlif_penalty=None)
    assert not routed.demo and len(routed.online) == 1


def test_rlif_penalty_on_step_before_takeover():
    asm = EpisodeAssembler()
    flags = [False, False, True, True, False, False, True]
    for t, f in enumerate(flags):
        asm.on_step(*step("r", "x", t, seq=t, intervention=f))
    (ep,) = asm.on_event(*end("r", "x", len(flags), seq=0))
    (seg,) = ep.segments()
    np.testing.assert_array_equal(apply_rlif(seg, -1.0).rewards, [0, -1, 0, 0, 0, -1, 0])
    routed = route(ep, demos_require_success=True, rlif_penalty=None)
    assert routed.online[0].rewards.sum() == 0  # off by default
