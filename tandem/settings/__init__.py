"""One typed settings tree for every process.

Precedence, lowest first: field defaults < a TOML file (``--config FILE`` or
``TANDEM_CONFIG``) < environment variables ``TANDEM_<SECTION>__<FIELD>``.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tandem.settings.bridge import BridgeSettings
from tandem.settings.learner import LearnerSettings
from tandem.settings.learner_service import LearnerServiceSettings
from tandem.settings.security import SecuritySettings
from tandem.settings.server import ServerSettings
from tandem.settings.teleop import TeleopSettings

__all__ = [
    "BridgeSettings",
    "LearnerServiceSettings",
    "LearnerSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "TeleopSettings",
    "load_settings",
    "save_settings",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
_config_file: ContextVar[Path | None] = ContextVar("tandem_config_file", default=None)


class SettingsError(ValueError):
    """The configuration is invalid; the message names every bad field and value."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TANDEM_",
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    data_dir: Path = Field(Path("data"), description="Directory for episodes, runs and logs.")
    log_level: LogLevel = Field("INFO", description="Logging level of every process.")
    bridge: BridgeSettings = Field(default_factory=BridgeSettings, description="Robot bridge.")
    learner: LearnerSettings = Field(default_factory=LearnerSettings, description="Learner.")
    learner_service: LearnerServiceSettings = Field(
        default_factory=LearnerServiceSettings, description="Online learner service."
    )
    server: ServerSettings = Field(default_factory=ServerSettings, description="Server and store.")
    security: SecuritySettings = Field(
        default_factory=SecuritySettings, description="ZMQ authentication (CurveZMQ)."
    )
    teleop: TeleopSettings = Field(default_factory=TeleopSettings, description="Teleop mapping.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Resolve the settings; raise SettingsError naming each bad field and value.

    ``config_file`` falls back to the ``TANDEM_CONFIG`` environment variable.
    ``overrides`` (keyword arguments by section) win over every other source.
    """
    raw = config_file if config_file is not None else os.environ.get("TANDEM_CONFIG")
    path = Path(raw) if raw else None
    if path is not None:
        _check_toml(path)
    token = _config_file.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    finally:
        _config_file.reset(token)


def save_settings(settings: Settings, path: str | Path) -> Path:
    """Write the resolved settings as JSON (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(settings.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def save_role_settings(settings: Settings, role: str) -> Path:
    """What a process really runs with, once resolved (a profile applied, overrides in):
    ``<data_dir>/settings/<role>.json``, the same as ``tandem config show --role ROLE``."""
    return save_settings(settings, Path(settings.data_dir) / "settings" / f"{role}.json")


def _check_toml(path: Path) -> None:
    if not path.is_file():
        raise SettingsError(f"config file {str(path)!r} does not exist")
    try:
        tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {str(path)!r} is not valid TOML: {exc}") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "<root>"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"invalid setting {field}{shown}: {err['msg']}")
    return "\n".join(lines)
