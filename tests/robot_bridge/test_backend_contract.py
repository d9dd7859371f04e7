"""One contract for every backend: mock, sim (lift, drawer), and zmq through a real arm-server.

The zmq cases run an ``ArmServer`` in a thread on a loopback port with the
mock driver and with the sim driver, and talk to it over real sockets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from robot_bridge.arm_server import ArmServer, make_driver
from robot_bridge.backend import RobotBackend
from robot_bridge.factory import make_backend
from robot_bridge.zmq_backend import ZmqBackend
from tandem.settings import BridgeSettings
from tests.robot_bridge.conftest import free_port, sim_available

pytestmark = pytest.mark.timeout(120)
needs_sim = pytest.mark.skipif(not sim_available(), reason="no MuJoCo sim here")

CASES = [
    pytest.param("mock", id="mock"),
    pytest.param("sim:lift", id="sim-lift", marks=needs_sim),
    pytest.param("sim:drawer", id="sim-drawer", marks=needs_sim),
    pytest.param("zmq+mock", id="zmq-mock"),
    pytest.param("zmq+sim:lift", id="zmq-sim-lift", marks=needs_sim),
]


def contract_settings() -> BridgeSettings:
    # default workspace box; generous timeouts (the machine is shared)
    return BridgeSettings(arm_request_timeout_s=0.5, link_timeout_s=2.0)


class ServerThread:
    """An arm-server whose driver is built and driven by its own thread (as in the process)."""

    def __init__(self, driver_spec: str, settings: BridgeSettings) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(driver_spec, settings), daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "arm-server did not start"
        if self.error:
            raise self.error

    def _run(self, driver_spec: str, settings: BridgeSettings) -> None:
        try:
            self.server = ArmServer(make_driver(driver_spec, settings), self.endpoint)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.ready.set()
        self.server.serve(self.stop)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture(params=CASES)
def backend(request: pytest.FixtureRequest) -> Iterator[RobotBackend]:
    settings = contract_settings()
    kind: str = request.param
    server = None
    if kind.startswith("zmq+"):
        server = ServerThread(kind.removeprefix("zmq+"), settings)
        be: RobotBackend = ZmqBackend(server.endpoint, settings)
    else:
        be = make_backend(kind, settings)
    yield be
    be.close()
    if server is not None:
        server.close()


def test_specs_before_connect(backend: RobotBackend) -> None:
    obs_spec, act_spec = backend.observation_spec, backend.action_spec
    assert obs_spec.state_dim >= 14
    assert obs_spec.cameras == {"front": (96, 96, 3), "wrist": (96, 96, 3)}
    assert act_spec.dim == 7 and (act_spec.low, act_spec.high) == (-1.0, 1.0)
    assert act_spec.max_translation_m == pytest.approx(0.05)


def test_reset_and_observe_match_the_spec(backend: RobotBackend) -> None:
    with backend:
        state = backend.reset(randomize=True, seed=1)
        for obs in (state, backend.observe()):
            assert obs.state.shape == (backend.observation_spec.state_dim,)
            assert obs.state.dtype == np.float32 and np.all(np.isfinite(obs.state))
            assert set(obs.images) == {"front", "wrist"}
            for img in obs.images.values():
                assert img.shape == (96, 96, 3) and img.dtype == np.uint8
            assert obs.ee_pos == pytest.approx(obs.state[:3], abs=1e-5)
            assert abs(np.linalg.norm(obs.ee_quat) - 1.0) < 1e-3
            assert 0.0 <= obs.gripper <= 1.0 + 1e-6


def test_seeded_reset_is_reproducible(backend: RobotBackend) -> None:
    with backend:
        a = backend.reset(randomize=True, seed=3).state
        b = backend.reset(randomize=True, seed=3).state
        c = backend.reset(randomize=True, seed=4).state
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a[14:], c[14:], atol=1e-4), "randomisation must change the task"


def test_apply_returns_the_action_applied_after_safety(backend: RobotBackend) -> None:
    with backend:
        backend.reset()
        ok = backend.apply([0.2, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
        assert not ok.refused and ok.action == pytest.approx([0.2, 0, 0, 0, 0, 0, -1.0])
        clipped = backend.apply([3.0, 0.0, 0.0, 0.0, -2.0, 0.0, 1.0])
        assert clipped.action[0] == pytest.approx(1.0) and clipped.action[4] == pytest.approx(-1)
        assert any(e.kind == "clipped" for e in clipped.events)
        bad = backend.apply([np.nan, 0, 0, 0, 0, 0, 0])
        assert bad.refused and bad.action[:6] == pytest.approx([0.0] * 6)
        assert bad.action[6] == pytest.approx(1.0), "hold keeps the last gripper command"
        assert [e.kind for e in bad.events] == ["non_finite"]
        short = backend.apply([0.1, 0.2])
        assert short.refused and [e.kind for e in short.events] == ["bad_shape"]


def test_actions_move_the_end_effector(backend: RobotBackend) -> None:
    with backend:
        start = backend.reset().ee_pos.copy()
        for _ in range(4):
            backend.apply([0.0, 0.6, 0.0, 0.0, 0.0, 0.0, -1.0])
        moved = backend.observe().ee_pos
    assert moved[1] - start[1] > 0.04, (start, moved)
    assert abs(moved[0] - start[0]) < 0.03


def test_workspace_box_is_enforced(backend: RobotBackend) -> None:
    with backend:
        backend.reset()
        events = []
        for _ in range(12):
            events += backend.apply([0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0]).events
        y = backend.observe().ee_pos[1]
    assert any(e.kind == "workspace" for e in events)
    assert -0.35 - 0.015 <= y < -0.3, f"ee left the workspace box or did not reach it: y={y}"


def test_task_signals_with_the_expert(backend: RobotBackend) -> None:
    expert = backend.expert()
    assert expert is not None
    with backend:
        obs = backend.reset(randomize=True, seed=0)
        assert backend.signals().success is False
        for _ in range(200):
            backend.apply(expert(obs.policy_input()))
            if backend.signals().success:
                break
            obs = backend.observe()
        sig = backend.signals()
    assert sig.success and sig.reward > 0


def test_stop_then_continue(backend: RobotBackend) -> None:
    with backend:
        backend.reset()
        backend.stop()
        assert backend.observe().stopped
        backend.apply([0.1, 0, 0, 0, 0, 0, -1])
        assert not backend.observe().stopped
