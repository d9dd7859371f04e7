"""Resolve the settings of ``tandem learner``: the shared tree and its service section.

The service section is ``Settings.learner_service``: the ``[learner_service]``
table of the TOML file and ``TANDEM_LEARNER_SERVICE__<FIELD>`` environment
variables, with the usual precedence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tandem.settings import LearnerServiceSettings, Settings, load_settings


def load_service_settings(
    config_file: str | Path | None, **service_overrides: Any
) -> tuple[Settings, LearnerServiceSettings]:
    """(shared settings, service settings); raises ``SettingsError`` naming bad fields.

    ``service_overrides`` (for example ``run_dir`` from the command line) win
    over every other source; ``None`` values are ignored.
    """
    overrides = {k: v for k, v in service_overrides.items() if v is not None}
    settings = load_settings(config_file)
    if overrides:
        service = settings.learner_service.model_dump() | overrides
        settings = load_settings(config_file, learner_service=service)
    return settings, settings.learner_service
