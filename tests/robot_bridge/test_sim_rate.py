"""bridge.sim_rate_hz: a simulated robot may run its control loop faster than real time."""

from __future__ import annotations

import pytest

from robot_bridge.app import build_bridge, control_settings
from tandem.settings import BridgeSettings, SettingsError, load_settings


def test_a_sim_robot_runs_at_sim_rate_hz() -> None:
    s = control_settings(BridgeSettings(robot="sim:lift", sim_rate_hz=30.0))
    assert s.rate_hz == 30.0 and s.sim_rate_hz == 30.0


def test_other_robots_and_an_unset_sim_rate_keep_rate_hz() -> None:
    assert control_settings(BridgeSettings(robot="mock", sim_rate_hz=30.0)).rate_hz == 10.0
    arm = BridgeSettings(robot="zmq://127.0.0.1:5570", sim_rate_hz=30.0)
    assert control_settings(arm).rate_hz == 10.0
    assert control_settings(BridgeSettings(robot="sim:lift")).rate_hz == 10.0


def test_the_bridge_is_built_with_the_sim_rate() -> None:
    bridge = build_bridge(BridgeSettings(robot="sim:lift", sim_rate_hz=25.0, cameras=[]))
    try:
        assert bridge.s.rate_hz == 25.0 and bridge.timing.rate_hz == 25.0
    finally:
        bridge.backend.close()


def test_the_setting_comes_from_the_environment_and_is_validated(monkeypatch) -> None:
    monkeypatch.setenv("TANDEM_BRIDGE__SIM_RATE_HZ", "40")
    assert load_settings(None).bridge.sim_rate_hz == 40.0
    monkeypatch.setenv("TANDEM_BRIDGE__SIM_RATE_HZ", "-1")
    with pytest.raises(SettingsError, match="sim_rate_hz"):
        load_settings(None)
