"""The operate page takes its gamepad mapping from the server's settings: a changed
``teleop.deadman_button`` moves the gamepad take-over with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.web.devices import install_gamepad, set_pad
from tests.web.harness import Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LB, RB = 4, 5  # standard mapping


@pytest.fixture
def lb_deadman(robot: Stack) -> Iterator[Stack]:
    """The shared stack with ``teleop.deadman_button`` = LB (read by pages that open now)."""
    settings = robot.state.settings
    default = settings.teleop
    settings.teleop = default.model_copy(update={"deadman_button": LB})
    try:
        yield robot
    finally:
        settings.teleop = default


def test_take_over_follows_the_deadman_setting(page: Page, lb_deadman: Stack) -> None:
    robot = lb_deadman
    install_gamepad(page)
    page.goto("/")
    expect(page.locator("#link")).to_have_text("connected")
    expect(page.locator("#pad-deadman")).to_have_text("LB")  # the help line names it
    refused = page.locator("#input-refused")

    # Without the lease the page refuses the deadman locally: RB is an ordinary button now.
    set_pad(page, pressed={RB: True})
    page.wait_for_timeout(500)
    expect(refused).to_be_hidden()
    set_pad(page, pressed={RB: False, LB: True})
    expect(refused).to_contain_text("Gamepad ignored")
    set_pad(page, pressed={LB: False})

    page.click("#start-rollout")
    robot.wait_status(lambda s: s["mode"] == "rollout", 10, "mode rollout")
    set_pad(page, pressed={LB: True})
    robot.wait_status(lambda s: s["mode"] == "intervention", 10, "mode intervention")
    set_pad(page, pressed={LB: False})
    robot.wait_status(lambda s: s["mode"] == "rollout", 10, "mode rollout again")


@pytest.fixture
def left_hand(robot: Stack) -> Iterator[Stack]:
    """The shared stack with ``teleop.xr_hand`` = left (read by the VR page when it opens)."""
    settings = robot.state.settings
    default = settings.teleop
    settings.teleop = default.model_copy(update={"xr_hand": "left"})
    try:
        yield robot
    finally:
        settings.teleop = default


def test_the_vr_page_drives_with_the_configured_hand(page: Page, left_hand: Stack) -> None:
    page.goto("/vr.html?emulate=iwer")
    expect(page.locator("#xr-support")).to_have_text("WebXR ready (left controller drives).")
    page.goto("/vr.html?emulate=iwer&hand=right")  # the page's own override still wins
    expect(page.locator("#xr-support")).to_have_text("WebXR ready (right controller drives).")
