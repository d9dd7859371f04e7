"""Ingest -> routing -> buffers in-process: no mixing, dedupe by step, logs, sources, config."""

from __future__ import annotations

import time

import numpy as np
import pytest

from learner.episode_arrays import load_arrays, merge
from learner.obs import ObsSpec
from learner.service.assembly import EpisodeAssembler
from learner.service.config import load_service_settings
from learner.service.data import ServiceData, spec_for
from learner.service.ingest import Delivery, Ingest
from learner.service.sources import IngestLog, load_roots
from tandem.messages import EpisodeEvent, EpisodeKind
from tandem.settings import SettingsError
from tandem.wire import encode
from tests.learner.service.helpers import STATE_DIM, end, start, step

ROUTE = {"demos_require_success": True, "rlif_penalty": None}


def _ingest(tmp_path=None) -> tuple[Ingest, list[Delivery]]:
    got: list[Delivery] = []
    log = IngestLog(tmp_path / "log", 0.0) if tmp_path is not None else None
    ingest = Ingest(
        ["tcp://127.0.0.1:1"],
        got.append,
        assembler=EpisodeAssembler(),
        ingest_log=log,
        route_kwargs=ROUTE,
    )
    return ingest, got


def _feed(ingest: Ingest, msg_images) -> None:
    msg, images = msg_images
    ingest.handle(encode(msg, {f"cam/{k}": v for k, v in images.items()}))


def _data(capacity: int = 1000) -> ServiceData:
    spec = ObsSpec(state_dim=STATE_DIM, action_dim=7, raw_state_dim=STATE_DIM)
    return ServiceData(
        spec,
        demo_capacity=capacity,
        online_capacity=capacity,
        intervention_capacity=capacity,
        n_step=1,
        gamma=0.99,
        mode="uniform",
        demo_frac=0.5,
    )


def _interleaved(ingest: Ingest, n: int, robots=("a", "b"), first_seq: int = 0) -> None:
    for r in robots:
        _feed(ingest, start(r, f"{r}-1", seq=first_seq))
    for t in range(n):
        for r in robots:
            _feed(ingest, step(r, f"{r}-1", t, seq=first_seq + t))
    for r in robots:
        _feed(ingest, end(r, f"{r}-1", n, seq=first_seq + 1))


def test_two_robots_interleaved_transitions_never_mix():
    ingest, got = _ingest()
    _interleaved(ingest, 12)
    data = _data()
    for d in got:
        for seg in d.routed.online:
            data.add_online(seg)
    assert len(data) == 24
    batch = data.sample_rl(500, np.random.default_rng(0))
    obs, nxt = batch["obs"]["state"], batch["next_obs"]["state"]
    np.testing.assert_array_equal(obs[:, 1], nxt[:, 1])  # same robot tag on both ends
    np.testing.assert_array_equal(nxt[:, 0], obs[:, 0] + 1)  # consecutive steps of one episode
    index = data.index()
    assert index["transitions"] == 24 and index["duplicates"] == 0
    assert sorted({r[0] for r in index["rows"]}) == ["a", "b"]


def test_malformed_and_duplicate_messages_are_counted_not_raised():
    ingest, _ = _ingest()
    ingest.handle([b"step", b"{not json"])
    ingest.handle([b"nope", b"{}"])
    ingest.handle([b"step"])
    rec = step("a", "e", 0, seq=5)
    _feed(ingest, rec)
    _feed(ingest, rec)  # duplicate seq: dropped
    _feed(ingest, step("a", "e", 1, seq=8))  # gap of two messages
    assert ingest.counters.malformed == 3
    totals = ingest.subscriber.seq_totals()
    assert totals.duplicates == 1 and totals.gaps == 1 and totals.missing == 2
    assert ingest.counters.steps == 2


def test_replay_never_holds_a_step_twice():
    ingest, got = _ingest()
    _interleaved(ingest, 6, robots=("a",))
    data = _data()
    (delivery,) = got
    (seg,) = delivery.routed.online
    assert data.add_online(seg) == 6
    assert data.add_online(seg) == 0
    assert data.duplicates == 6 and len(data) == 6


def test_online_index_forgets_evicted_episodes():
    data = _data(capacity=16)
    ingest, got = _ingest()
    for k in range(4):
        _feed(ingest, start("a", f"e{k}", seq=k))
        for t in range(5):
            _feed(ingest, step("a", f"e{k}", t, seq=10 * k + t))
        _feed(ingest, end("a", f"e{k}", 5, seq=100 + k))
    for d in got:
        data.add_online(d.routed.online[0])
    episodes = {r[1] for r in data.index()["rows"]}
    assert len(data.online) == 10 and episodes == {"e2", "e3"}


def test_ingest_log_round_trip_and_merge(tmp_path):
    ingest, got = _ingest(tmp_path)
    _feed(ingest, start("a", "e", seq=0, kind=EpisodeKind.DEMO))
    for t in range(5):
        _feed(ingest, step("a", "e", t, seq=t, kind=EpisodeKind.DEMO, terminated=t == 4))
    _feed(ingest, end("a", "e", 5, seq=1, kind=EpisodeKind.DEMO, terminated=True))
    (path,) = (tmp_path / "log").glob("a/e")
    loaded = load_arrays(path)
    assert loaded.ended and len(loaded) == 5 and loaded.final is not None
    live = got[0].episode
    np.testing.assert_array_equal(loaded.segments()[0].states, live.segments()[0].states)
    # A partial view (e.g. a crashed log) merged with the full one: union by step, no repeats.
    partial = load_arrays(path).take(slice(0, 2))
    partial.ended, partial.final = False, None
    both = merge(partial, loaded)
    assert list(both.step_index) == list(range(5)) and both.ended
    roots = load_roots([tmp_path / "log"], demos_only=True)
    assert list(roots) == [("a", "e")]


def test_spec_for_stacking_and_pixels():
    ingest, got = _ingest()
    _interleaved(ingest, 3, robots=("a",))
    seg = got[0].routed.online[0]
    spec = spec_for(seg, pixels=False, cameras=[], action_dim=7, state_dims=3, state_stack=2)
    assert (spec.state_dim, spec.raw_state_dim) == (6, 3)
    spec = spec_for(seg, pixels=True, cameras=[], action_dim=7, frame_stack=3)
    assert spec.cameras == ("front",) and spec.image_shape == (8, 8, 9)
    with pytest.raises(ValueError, match="not in the data"):
        spec_for(seg, pixels=True, cameras=["wrist"], action_dim=7)


def test_service_settings_from_toml_section_and_env(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'log_level = "DEBUG"\n[learner]\nbatch_size = 8\n'
        "[learner_service]\nutd = 2.0\nrefit_steps = 7\n[bridge]\nrate_hz = 5\n"
    )
    monkeypatch.setenv("TANDEM_LEARNER_SERVICE__REFIT_STEPS", "9")
    settings, svc = load_service_settings(cfg)
    assert settings.learner.batch_size == 8 and settings.bridge.rate_hz == 5
    assert settings.log_level == "DEBUG"
    assert svc.utd == 2.0 and svc.refit_steps == 9
    cfg.write_text("[learner_service]\nutd = -1\n")
    with pytest.raises(SettingsError, match=r"learner_service\.utd"):
        load_service_settings(cfg)
    cfg.write_text("[learner_service]\nbogus = 1\n")
    with pytest.raises(SettingsError, match="bogus"):
        load_service_settings(cfg)


def test_profile_replaces_defaults_and_explicit_settings_win(tmp_path, monkeypatch):
    monkeypatch.delenv("TANDEM_CONFIG", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[learner_service]\nprofile = "cpu"\n[learner]\nbc_steps = 300\n')
    settings, svc = load_service_settings(cfg)
    assert svc.profile == "cpu"
    assert settings.learner.hidden_dim == 256  # from learner/profiles/cpu.toml
    assert settings.learner.bc_steps == 300  # the config file wins over the profile
    monkeypatch.setenv("TANDEM_LEARNER_SERVICE__PROFILE", "state")
    monkeypatch.setenv("TANDEM_LEARNER__HIDDEN_DIM", "64")
    settings, _ = load_service_settings(cfg)
    assert settings.learner.hidden_dim == 64 and settings.learner.num_q == 5
    monkeypatch.setenv("TANDEM_LEARNER_SERVICE__PROFILE", "huge")
    known = r"cpu, pixel, proto_cpu, state"
    with pytest.raises(SettingsError, match=rf"unknown learner profile 'huge'.*{known}"):
        load_service_settings(cfg)


def test_bridge_restart_resets_seq_without_loss_or_false_duplicates():
    ingest, got = _ingest()
    _interleaved(ingest, 5, robots=("a",))  # seq 0..4
    # The bridge restarts: its sequence numbers start again at 0, new episode ids.
    _feed(ingest, start("a", "after", seq=0))
    for t in range(4):
        _feed(ingest, step("a", "after", t, seq=t))
    _feed(ingest, end("a", "after", 4, seq=1))
    assert [len(d.routed.online[0]) for d in got] == [5, 4]
    totals = ingest.subscriber.seq_totals()
    assert totals.duplicates == 0 and totals.gaps == 0


def test_relabel_to_discard_within_grace_drops_the_episode():
    got: list[Delivery] = []
    ingest = Ingest(
        ["tcp://127.0.0.1:1"],
        got.append,
        assembler=EpisodeAssembler(),
        ingest_log=None,
        route_kwargs=ROUTE,
        label_grace_s=60.0,
    )
    for name, seq in (("e1", 0), ("e2", 10)):
        _feed(ingest, start("a", name, seq=seq))
        for t in range(4):
            _feed(ingest, step("a", name, t, seq=seq + t))
        _feed(ingest, end("a", name, 4, seq=seq + 1))
        if name == "e1":
            assert got == []  # held: the operator may still relabel it
            label = EpisodeEvent(
                seq=2,
                robot_id="a",
                episode_id="e1",
                episode_kind="rollout",
                event="label",
                reason="relabel",
                outcome="discard",
            )
            ingest.handle(encode(label))
    # e1 was released when e2 started, dropped as discarded; e2 is released at shutdown.
    assert [(d.episode.episode_id, d.routed.dropped_reason) for d in got] == [("e1", "discarded")]
    ingest._release_all()
    assert [d.episode.episode_id for d in got] == ["e1", "e2"] and got[1].routed.online


def test_ingest_without_bridges_waits_instead_of_spinning():
    # A learner started before any bridge is configured must leave the CPU to training.
    ingest = Ingest(
        [], lambda d: None, assembler=EpisodeAssembler(), ingest_log=None, route_kwargs=ROUTE
    )
    ingest.start()
    try:
        before = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - before < 0.3
    finally:
        ingest.stop()


@pytest.mark.parametrize("method", ["dagger", "hg_dagger"])
def test_the_online_learner_refuses_the_expert_methods(tmp_path, monkeypatch, method):
    monkeypatch.delenv("TANDEM_CONFIG", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[learner]\nmethod = "{method}"\n')
    with pytest.raises(SettingsError, match=f"'{method}' runs only in tandem train"):
        load_service_settings(cfg)
