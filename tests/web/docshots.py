"""Screenshots that docs/web.md shows, taken by the browser tests."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Locator, Page

from tests.web.harness import ARTIFACTS, REPO


def doc_screenshot(target: Page | Locator, name: str) -> Path:
    """Save ``name``: into docs/ with ``TANDEM_DOC_SCREENSHOTS=1`` (to refresh the docs),
    else beside the other test artifacts, so that a plain test run leaves docs/ alone."""
    folder = REPO / "docs" if os.environ.get("TANDEM_DOC_SCREENSHOTS") == "1" else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(folder / name))
    return folder / name
