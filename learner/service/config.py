"""Resolve the settings of ``tandem learner``: the shared tree and its service section.

The service section is ``Settings.learner_service``: the ``[learner_service]``
table of the TOML file and ``TANDEM_LEARNER_SERVICE__<FIELD>`` environment
variables, with the usual precedence.

The learner core's settings start from a profile of ``learner/profiles/``
(``learner_service.profile``; by default ``pixel`` with CUDA, else ``cpu``):
its ``[learner]`` table replaces the built-in defaults, and every field set in
the config file or the environment still wins over it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tandem.settings import LearnerServiceSettings, Settings, SettingsError, load_settings

PROFILE_DIR = Path(__file__).resolve().parents[1] / "profiles"
OFFLINE_ONLY = ("dagger", "hg_dagger")  # tandem train --expert: no expert in the live loop


def load_service_settings(
    config_file: str | Path | None, **service_overrides: Any
) -> tuple[Settings, LearnerServiceSettings]:
    """(shared settings, service settings); raises ``SettingsError`` naming bad fields.

    ``service_overrides`` (for example ``run_dir`` from the command line) win
    over every other source; ``None`` values are ignored.
    """
    overrides = {k: v for k, v in service_overrides.items() if v is not None}
    settings = load_settings(config_file)
    service = settings.learner_service.model_dump() | overrides
    profile = settings.learner_service.profile or default_profile()
    learner = profile_table(profile) | settings.learner.model_dump(
        include=settings.learner.model_fields_set
    )
    settings = load_settings(config_file, learner=learner, learner_service=service)
    if settings.learner.method in OFFLINE_ONLY:
        raise SettingsError(
            f"learner.method = {settings.learner.method!r} runs only in tandem train (it needs "
            "a scripted expert); the online learner takes rl, rlpd, ibrl, ibrl_soft or bc"
        )
    return settings, settings.learner_service


def default_profile() -> str:
    """``pixel`` (the reference networks, camera observations) with CUDA, else ``cpu``."""
    import torch

    return "pixel" if torch.cuda.is_available() else "cpu"


def profile_table(name: str) -> dict[str, Any]:
    """The ``[learner]`` table of profile ``name``; ``SettingsError`` names the choices."""
    path = PROFILE_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise SettingsError(f"unknown learner profile {name!r}; available: {known}")
    table = tomllib.loads(path.read_text()).get("learner", {})
    if not isinstance(table, dict):
        raise SettingsError(f"profile {path} has no [learner] table")
    return table
