"""Resolve the settings of ``tandem learner``: the shared tree plus the service section.

The service section (``tandem.settings.learner_service.LearnerServiceSettings``)
is read from the ``[learner_service]`` table of the TOML file and from
``TANDEM_LEARNER_SERVICE__<FIELD>`` environment variables (which win), the same
precedence as the shared tree. Once the learner section nests it as
``learner.service`` this module is where that switch happens.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tandem.settings import Settings, SettingsError, load_settings
from tandem.settings.learner_service import LearnerServiceSettings

SECTION = "learner_service"
ENV_PREFIX = "TANDEM_LEARNER_SERVICE__"


def load_service_settings(
    config_file: str | Path | None, **service_overrides: Any
) -> tuple[Settings, LearnerServiceSettings]:
    """(shared settings, service settings); raises ``SettingsError`` naming bad fields."""
    raw = config_file if config_file is not None else os.environ.get("TANDEM_CONFIG")
    table: dict[str, Any] = {}
    if raw:
        path = Path(raw)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SettingsError(f"config file {str(path)!r} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        table = data.pop(SECTION, {})
        settings = _shared_without_section(path.read_text(), data)
    else:
        settings = load_settings(None)
    table.update(_env_values())
    table.update({k: v for k, v in service_overrides.items() if v is not None})
    try:
        service = LearnerServiceSettings.model_validate(table)
    except ValidationError as exc:
        lines = [
            f"invalid setting {SECTION}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        ]
        raise SettingsError("\n".join(lines)) from None
    return settings, service


def _shared_without_section(text: str, expected: dict[str, Any]) -> Settings:
    """Load the shared tree from the TOML text with the ``[learner_service]`` table cut out."""
    kept, skipping = [], False
    for line in text.splitlines():
        header = line.strip()
        if header.startswith("["):
            skipping = header.replace(" ", "") == f"[{SECTION}]"
        if not skipping:
            kept.append(line)
    remainder = "\n".join(kept) + "\n"
    if tomllib.loads(remainder) != expected:
        raise SettingsError(f"write the service settings as one [{SECTION}] table")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(remainder)
    try:
        return load_settings(f.name)
    finally:
        os.unlink(f.name)


def _env_values() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in os.environ.items():
        if name.upper().startswith(ENV_PREFIX):
            values[name[len(ENV_PREFIX) :].lower()] = value
    return values
