"""The training page's Q strip shades the steps an operator drove (its own stack: in the
shared one, what earlier modules left behind kept the gamepad's steps from being shaded in
a full run, though never when run alone; not understood, see the closing note)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tandem.messages import TakeOver
from tests.web.conftest import open_stack
from tests.web.devices import install_gamepad, set_pad
from tests.web.harness import PageErrors, Stack, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
RB = 5  # the deadman button (teleop.deadman_button)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with open_stack(tmp_path_factory.mktemp("web-qstrip")) as st:
        yield st


def test_training_page_q_strip_shades_human_driven_steps(robot: Stack, page: Page) -> None:
    """An operator drives part of a rollout with the gamepad on the operate page (second tab);
    the training page's Q strip shades those steps. The take-over itself is sent at once
    through the link: the stack's expert policy lifts the cube in about 8 steps, sooner than
    a page learns from the 2 Hz status that a rollout runs."""
    page.goto("/training.html")
    expect(page.locator("#link")).to_have_text("connected")
    operate = page.context.new_page()
    errors = PageErrors()
    operate.on("console", errors.console)
    operate.on("pageerror", errors.page_error)
    install_gamepad(operate)
    operate.goto("/")
    operate.click("#start-rollout")
    robot.wait_status(lambda s: s["mode"] == "rollout", 10, "mode rollout")
    robot.wait_steps(3)
    assert robot.command(TakeOver(operator="admin", reason="q strip test")).ok
    expect(operate.locator("#mode")).to_have_attribute("data-mode", "intervention")
    set_pad(operate, axes=[0.0, -0.5, 0.0, 0.0], pressed={RB: True})

    def human_steps(strip: dict[str, Any]) -> int:
        return sum(last - first + 1 for first, last in strip["humanSpans"])

    def driven() -> dict[str, Any] | None:
        strip = page.evaluate("window.tandem.summary().qstrip")
        return strip if human_steps(strip) >= 3 else None

    strip = wait_for(driven, 20, "3 human-driven steps shaded on the Q strip")
    set_pad(operate, axes=[0.0, 0.0, 0.0, 0.0], pressed={RB: False})
    episode = strip["episode"]
    strip = page.evaluate("window.tandem.summary().qstrip")
    assert strip["episode"] == episode
    # Policy steps before the take-over stay unshaded.
    assert strip["humanSpans"][0][0] >= 3, strip["humanSpans"]
    assert strip["points"] > human_steps(strip)
    operate.close()
    assert not errors.messages, errors.messages
