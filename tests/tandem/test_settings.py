import json
from pathlib import Path

import pytest

from tandem.settings import Settings, SettingsError, load_settings, save_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("TANDEM_"):
            monkeypatch.delenv(name)


def test_defaults_match_the_reference_hyperparameters():
    s = load_settings()
    assert s.learner.batch_size == 256
    assert s.learner.n_step == 3
    assert s.bridge.rate_hz == 10.0
    assert s.bridge.max_translation_m == 0.05


def test_toml_overrides_defaults_and_env_overrides_toml(tmp_path: Path, monkeypatch):
    cfg = tmp_path / "lab.toml"
    cfg.write_text("[learner]\nbatch_size = 64\nlr = 0.001\n[bridge]\nrobot_id = 'arm7'\n")
    monkeypatch.setenv("TANDEM_LEARNER__BATCH_SIZE", "32")
    s = load_settings(cfg)
    assert s.learner.batch_size == 32  # env wins over the file
    assert s.learner.lr == 0.001  # the file wins over defaults
    assert s.bridge.robot_id == "arm7"
    assert s.bridge.rate_hz == 10.0  # untouched fields keep defaults


def test_config_file_from_environment(tmp_path: Path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text("log_level = 'DEBUG'\n")
    monkeypatch.setenv("TANDEM_CONFIG", str(cfg))
    assert load_settings().log_level == "DEBUG"


def test_bad_env_value_names_field_and_value(monkeypatch):
    monkeypatch.setenv("TANDEM_LEARNER__BATCH_SIZE", "abc")
    with pytest.raises(SettingsError, match=r"learner\.batch_size.*'abc'"):
        load_settings()


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[learner]\nmethod = 'dqn'\n", "learner.method"),
        ("[bridge]\nrate_hz = -1\n", "bridge.rate_hz"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[teleop]\nno_such_field = 1\n", "teleop.no_such_field"),
    ],
)
def test_bad_toml_values_are_rejected_with_the_field(tmp_path: Path, toml: str, field: str):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")):
        load_settings(cfg)


def test_missing_and_malformed_config_files(tmp_path: Path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[learner\nbatch_size = ")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken)


def test_every_field_has_a_description():
    def walk(model, prefix=""):
        for name, info in model.model_fields.items():
            assert info.description, f"{prefix}{name} has no description"
            sub = info.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                walk(sub, f"{prefix}{name}.")

    walk(Settings)


def test_resolved_settings_round_trip_through_json(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TANDEM_BRIDGE__HORIZON", "123")
    s = load_settings()
    path = save_settings(s, tmp_path / "run" / "settings.json")
    data = json.loads(path.read_text())
    assert data["bridge"]["horizon"] == 123
    assert Settings.model_validate(data) == s


def test_logging_follows_a_replaced_stderr():
    import io
    import logging
    import sys

    from tandem.logs import setup_logging

    setup_logging("bridge", "INFO")
    old = sys.stderr
    try:
        sys.stderr = first = io.StringIO()
        logging.getLogger("t").info("first")
        first.close()  # a test runner closes its capture; logging must not raise then
        sys.stderr = replacement = io.StringIO()
        logging.getLogger("t").info("second")
        assert "[bridge] t: second" in replacement.getvalue()
    finally:
        sys.stderr = old
        logging.getLogger().handlers.clear()
