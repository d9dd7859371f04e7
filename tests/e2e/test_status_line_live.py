"""The training page's status line follows a real learner (issue 19): ``tandem up`` on sim:lift,
the scripted operator's two demos, and Chromium on the training page.

``tests/web/test_web_training.py`` drives the same line from a stand-in publisher; here the
learner service itself publishes. A MutationObserver in the page records every text the line
shows (polling from the test would miss states shorter than its interval), until the learner
has published its first policy. The run takes about a minute on the CPU.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.e2e.up_harness import ROOT, TandemUp
from tests.polling import wait_for
from tests.web.docshots import doc_screenshot
from tests.web.harness import CHROMIUM_ARGS, PageErrors, chromium_executable

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(240)]
log = logging.getLogger(__name__)

LIVE = {
    "TANDEM_LEARNER_SERVICE__PROFILE": "cpu",
    "TANDEM_BRIDGE__SIM_RATE_HZ": "40",
    "TANDEM_BRIDGE__HORIZON": "50",
    "TANDEM_LEARNER__BC_STEPS": "300",
    "TANDEM_LEARNER__ONLINE_MIN_DEMOS": "2",
}
# Each change of the line's text, with its data-state, into window.statusTexts.
RECORD = """() => {
  const el = document.getElementById("learner");
  window.statusTexts = [];
  const push = () => {
    const last = window.statusTexts.at(-1);
    const now = {text: el.textContent, state: el.dataset.state};
    if (!last || last.text !== now.text || last.state !== now.state) window.statusTexts.push(now);
  };
  push();
  new MutationObserver(push).observe(el, {childList: true, characterData: true, subtree: true,
                                          attributes: true});
}"""


def login_link(up: TandemUp) -> str:
    """``tandem login-link`` for the running server's data directory."""
    done = subprocess.run(
        [sys.executable, "-m", "tandem", "login-link"], cwd=ROOT, env=up.env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def texts(page: Page) -> list[dict[str, Any]]:
    return page.evaluate("() => window.statusTexts")  # type: ignore[no-any-return]


def first_index(seen: list[str], pattern: str) -> int:
    hits = [i for i, text in enumerate(seen) if re.search(pattern, text)]
    assert hits, f"no status {pattern!r} in {seen}"
    return hits[0]


def test_status_line_follows_a_live_learner(tmp_path: Path) -> None:
    up = TandemUp(tmp_path / "data", LIVE)
    up.start()
    errors = PageErrors()
    try:
        up.wait_ready()
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium_executable(), headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(base_url=up.url, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(login_link(up), wait_until="commit")  # sets the session cookie
            page.on("console", errors.console)
            page.on("pageerror", errors.page_error)
            page.goto("/training.html")
            page.evaluate(RECORD)
            t0 = time.monotonic()
            up.operator("--demos", "2", "--rollouts", "0", report=tmp_path / "demos.json")
            wait_for(
                lambda: any("published v" in t["text"] for t in texts(page)),
                120, "the first published policy on the status line", interval=0.2,
            )  # fmt: skip
            elapsed = time.monotonic() - t0
            doc_screenshot(page, "training_status_live.png")
            seen = texts(page)
            context.close()
            browser.close()
        assert up.stop() == 0
    finally:
        up.kill()
    log.warning("status line, %.0f s from the first demo to v1: %s", elapsed, seen)
    assert not errors.messages, "the page logged errors:\n" + "\n".join(errors.messages)
    words = [t["text"] for t in seen]
    assert not [t for t in seen if t["state"] == "down" or "learner down" in t["text"]], words
    waiting = first_index(words, r"^waiting for demos \([01]/2\)")
    pretraining = first_index(words, r"^pre-training \d+ %")
    published = first_index(words, r"published v[1-9]")
    assert waiting < pretraining < published, words
    # Demos are recorded by now: after pre-training the learner waits for rollouts, not data.
    assert "no episode recorded yet" not in words[published], words
