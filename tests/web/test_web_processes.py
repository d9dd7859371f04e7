"""The Processes panel shows what a real Supervisor writes into the server's data directory."""

from __future__ import annotations

import io
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tandem.cli.supervisor import Backoff, ChildSpec, Supervisor
from tests.web.harness import ARTIFACTS, Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

KILLED = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
STEADY = "import time\nwhile True:\n    time.sleep(0.05)"


@pytest.fixture
def supervisor(stack: Stack, tmp_path: Path) -> Iterator[Supervisor]:
    """``tandem up``'s supervisor writing ``<data_dir>/processes.json``: a learner that is
    killed by SIGKILL as soon as it starts (its back-off grows 1, 2, 4, 8 s) and a steady bridge.
    """
    status = stack.data_dir / "processes.json"
    sup = Supervisor(
        [
            ChildSpec("bridge", [sys.executable, "-c", STEADY]),
            ChildSpec("learner", [sys.executable, "-c", KILLED]),
        ],
        tmp_path / "logs",
        status,
        backoff=Backoff(initial_s=1.0, max_s=60.0),
        stop_timeout_s=5.0,
        console=io.StringIO(),
    )
    thread = threading.Thread(target=sup.run, kwargs={"poll_s": 0.05}, daemon=True)
    thread.start()
    try:
        yield sup
    finally:
        sup.stop()
        thread.join(20)
        status.unlink(missing_ok=True)


@pytest.mark.parametrize("path", ["/", "/training.html"], ids=["operate", "training"])
def test_processes_panel_shows_a_crash_loop_then_no_supervisor(
    page: Page, stack: Stack, supervisor: Supervisor, path: str
) -> None:
    page.goto(path)
    panel = page.locator("#processes")
    learner = panel.locator('li[data-role="learner"]')
    expect(learner).to_have_attribute("data-status", "backoff", timeout=20_000)
    expect(learner).to_have_class("proc backoff restarted")
    expect(learner.locator(".role")).to_have_text("learner")
    expect(learner.locator('[data-field="status"]')).to_have_text("backoff")
    expect(learner.locator('[data-field="pid"]')).to_have_text("")
    expect(learner.locator('[data-field="next"]')).to_contain_text("restart in")
    expect(learner.locator('[data-field="restarts"]')).to_have_text(
        re.compile(r"^[1-9]\d* restarts?$")
    )
    expect(learner.locator('[data-field="exit"]')).to_have_text(
        re.compile(r"^last exit code -9 \(SIGKILL\), \d+ s ago$")
    )

    bridge = panel.locator('li[data-role="bridge"]')
    expect(bridge).to_have_attribute("data-status", "running")
    expect(bridge).to_have_class("proc")
    expect(bridge.locator('[data-field="pid"]')).to_have_text(f"pid {supervisor.states()[0].pid}")
    expect(bridge.locator('[data-field="up"]')).to_have_text(re.compile(r"^up \d+ s$"))
    expect(bridge.locator('[data-field="restarts"]')).to_have_text("0 restarts")
    expect(bridge.locator('[data-field="exit"]')).to_have_count(0)
    expect(panel).to_have_attribute("data-state", "supervised")
    expect(panel).to_have_attribute("data-alert", "true")
    expect(panel.locator('[data-role="summary"]')).to_have_text("1 in backoff")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = path.strip("/").replace(".html", "") or "operate"
    page.screenshot(path=str(ARTIFACTS / f"processes_backoff_{name}.png"), full_page=True)

    page.set_viewport_size({"width": 412, "height": 915})  # a phone: the panel still fits
    fits = """() => {
      const panel = document.getElementById("processes");
      return panel.scrollWidth <= panel.clientWidth
        && panel.getBoundingClientRect().right <= window.innerWidth
        && document.documentElement.scrollWidth <= window.innerWidth + 1;
    }"""  # waits: the charts take the new width on the resize event
    page.wait_for_function(fits, timeout=5_000)

    supervisor.stop()
    expect(bridge).to_have_attribute("data-status", "stopped", timeout=20_000)
    (stack.data_dir / "processes.json").unlink()
    expect(panel).to_have_attribute("data-state", "unsupervised", timeout=10_000)
    expect(panel.locator('[data-role="note"]')).to_contain_text("Not started by tandem up")
    expect(panel.locator("ul.procs")).to_be_hidden()
    expect(panel).to_have_attribute("data-alert", "false")
