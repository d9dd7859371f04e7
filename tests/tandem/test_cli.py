import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tandem(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    return subprocess.run(
        [sys.executable, "-m", "tandem", *args],
        check=False,
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_lists_the_commands():
    result = tandem("--help")
    assert result.returncode == 0
    assert "version" in result.stdout
    assert "config" in result.stdout


def test_version():
    import tandem as pkg

    result = tandem("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tandem {pkg.__version__}"


def test_config_show_prints_resolved_settings(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[bridge]\nrobot = 'sim:drawer'\n")
    result = tandem("config", "show", "--config", str(cfg), env={"TANDEM_LEARNER__GAMMA": "0.9"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["bridge"]["robot"] == "sim:drawer"
    assert data["learner"]["gamma"] == 0.9


def test_invalid_setting_exits_2_and_names_the_field():
    result = tandem("config", "show", env={"TANDEM_LEARNER__BATCH_SIZE": "abc"})
    assert result.returncode == 2
    assert "learner.batch_size" in result.stderr
    assert "'abc'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error():
    result = tandem("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_the_cli_module_runs_as_a_script_too():
    result = subprocess.run(
        [sys.executable, "-m", "tandem.cli.main", "--help"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert "usage: tandem" in result.stdout
