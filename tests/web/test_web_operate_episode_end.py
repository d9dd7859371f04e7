"""Operate page with a short episode limit: the end-of-episode message, and labelling the
episode that hit the time limit from await reset (its own stack: a 30-step limit)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import open_stack
from tests.web.docshots import doc_screenshot
from tests.web.harness import Stack, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

HORIZON = 30  # steps: 3 s at the bridge's 10 Hz


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with open_stack(tmp_path_factory.mktemp("web-short"), horizon=HORIZON) as st:
        yield st


def test_time_limit_message_and_label_from_await_reset(page: Page, robot: Stack) -> None:
    page.goto("/")
    expect(page.locator("#link")).to_have_text("connected")
    page.click("#start-demo")
    first = robot.wait_status(lambda s: s["mode"] == "teleop", 10, "mode teleop")["episode_id"]
    expect(page.locator("#step")).to_have_text(re.compile(rf"^\d+ / {HORIZON}$"))

    robot.wait_status(lambda s: s["mode"] == "await_reset", 20, "the time limit")
    end = page.locator("#episode-end")
    expect(end).to_have_text(
        f"Demo ended: time limit ({HORIZON} steps). Label it: Success / Failure / Discard "
        "(keys 1 / 2 / 3, gamepad Y / B / Back), then Reset done."
    )
    expect(page.locator("#success")).to_be_enabled()
    doc_screenshot(page, "operate_episode_end.png")

    def outcome(wanted: str) -> Any:
        res = robot.http.get(f"/api/episodes/{first}")
        return res.status_code == 200 and res.json()["outcome"] == wanted and res.json()

    page.click("#success")  # in await reset: labels the episode that just ended
    row = wait_for(lambda: outcome("success"), 15, f"episode {first} labelled success")
    assert row["length"] == HORIZON
    expect(end).to_contain_text("Labelled success. Reset the scene, then press Reset done.")
    assert robot.status()["mode"] == "await_reset"  # type: ignore[index]

    page.keyboard.press("Digit2")  # the key map's relabel: failure
    wait_for(lambda: outcome("failure"), 15, f"episode {first} relabelled failure")
    expect(end).to_contain_text("Labelled failure.")

    page.click("#reset-done")  # the next demo starts; the message goes
    robot.wait_status(
        lambda s: s["mode"] == "teleop" and s["episode_id"] not in (None, first), 10, "next demo"
    )
    expect(end).to_be_hidden()
