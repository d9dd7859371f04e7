"""n-step targets, demo pinning, eviction and sampling rules of the replay."""

from __future__ import annotations

import numpy as np
import pytest

from learner.replay import Replay, TransitionRing, nstep_targets, sampling

G = 0.9


def test_nstep_termination_zeroes_bootstrap_at_the_end() -> None:
    ret, disc, off = nstep_targets(np.array([0.0, 0.0, 0.0, 1.0]), True, 3, G)
    np.testing.assert_allclose(ret, [0.0, G**2, G, 1.0], rtol=1e-6)
    np.testing.assert_allclose(disc, [G**3, 0.0, 0.0, 0.0], rtol=1e-6)
    assert off.tolist() == [3, 3, 2, 1]


def test_nstep_truncation_bootstraps_from_the_final_observation() -> None:
    ret, disc, off = nstep_targets(np.array([0.0, 0.0, 0.0, 1.0]), False, 3, G)
    np.testing.assert_allclose(ret, [0.0, G**2, G, 1.0], rtol=1e-6)
    np.testing.assert_allclose(disc, [G**3, G**3, G**2, G], rtol=1e-6)
    assert off.tolist() == [3, 3, 2, 1]


def _store(capacity: int, evict: bool = True) -> TransitionRing:
    return TransitionRing(capacity, {"state": ((1,), "float32")}, 1, 2, G, evict=evict)


def _episode(store: TransitionRing, start: float, length: int, terminated: bool = False) -> None:
    obs = {"state": (start + np.arange(length + 1, dtype=np.float32))[:, None]}
    action = np.full((length, 1), start, np.float32)
    store.add_episode(obs, action, np.zeros(length), terminated)


def test_sample_returns_the_n_step_next_observation() -> None:
    store = _store(100)
    _episode(store, 0.0, 5)
    batch = store.sample(500, np.random.default_rng(0))
    s, nxt = batch["obs"]["state"][:, 0], batch["next_obs"]["state"][:, 0]
    np.testing.assert_allclose(nxt - s, np.minimum(2, 5 - s))
    assert set(s.tolist()) == {0, 1, 2, 3, 4}  # the final frame starts no transition


def test_online_store_evicts_whole_oldest_episodes() -> None:
    store = _store(20)
    for k in range(5):
        _episode(store, 100.0 * k, 5)  # 6 frames each
    assert len(store) == 15  # 3 episodes of 5 transitions fit
    starts = set(store.sample(2000, np.random.default_rng(0))["action"][:, 0].tolist())
    assert starts == {200.0, 300.0, 400.0}


def test_demo_store_refuses_to_overflow() -> None:
    store = _store(12, evict=False)
    _episode(store, 0.0, 5)
    _episode(store, 1.0, 5)
    with pytest.raises(ValueError, match="demo store full"):
        _episode(store, 2.0, 5)


def test_demos_are_never_evicted_and_sampling_rules() -> None:
    demos, online = _store(12, evict=False), _store(30)
    _episode(demos, -1.0, 5)
    for k in range(20):
        _episode(online, float(k), 5)
    rng = np.random.default_rng(0)
    uniform = Replay(demos, online, "uniform").sample(20_000, rng)
    demo_frac = (uniform["action"][:, 0] == -1.0).mean()
    assert abs(demo_frac - 5 / (5 + len(online))) < 0.02
    rlpd = Replay(demos, online, "rlpd", 0.5).sample(1000, rng)
    assert (rlpd["action"][:, 0] == -1.0).sum() == 500


@pytest.mark.parametrize(
    ("method", "ibrl_frac", "expected"),
    [
        ("ibrl", None, ("uniform", 0.0)),
        ("ibrl", 0.25, ("rlpd", 0.25)),
        ("ibrl_soft", 0.5, ("rlpd", 0.5)),
        ("rlpd", None, ("rlpd", 0.4)),
        ("rlpd", 0.25, ("rlpd", 0.4)),  # rlpd keeps its own fraction
    ],
)
def test_each_method_samples_demos_by_its_rule(
    method: str, ibrl_frac: float | None, expected: tuple[str, float]
) -> None:
    assert sampling(method, 0.4, ibrl_frac) == expected
    demos, online = _store(12, evict=False), _store(30)
    _episode(demos, -1.0, 5)
    for k in range(5):
        _episode(online, float(k), 5)
    mode, frac = sampling(method, 0.4, ibrl_frac)
    batch = Replay(demos, online, mode, frac).sample(1000, np.random.default_rng(1))
    share = (batch["action"][:, 0] == -1.0).mean()
    assert share == pytest.approx(frac if mode == "rlpd" else 5 / 30, abs=0.04)


def test_store_round_trips_through_arrays() -> None:
    store = _store(30)
    for k in range(4):
        _episode(store, float(k), 4, terminated=k % 2 == 0)
    copy = _store(30)
    copy.load_arrays(store.arrays())
    a = store.sample(64, np.random.default_rng(1))
    b = copy.sample(64, np.random.default_rng(1))
    for key in ("action", "reward", "discount"):
        np.testing.assert_array_equal(a[key], b[key])
