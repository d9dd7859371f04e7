"""Operate page against the sim bridge: gamepad teleop, take-over, labels, reset done,
buttons that say why they are disabled, refused input that says why."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.web.devices import install_gamepad, set_pad
from tests.web.docshots import doc_screenshot
from tests.web.harness import Stack, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


RB = 5  # the deadman button of the standard mapping (teleop.deadman_button)
LEFT_STICK_UP = [0.0, -1.0, 0.0, 0.0]  # standard mapping: y is positive down


def ee(status: dict[str, Any]) -> list[float]:
    assert status["ee_pos"] is not None, "the bridge reports no end-effector position"
    return list(status["ee_pos"])


def open_operate(page: Page) -> None:
    page.goto("/")
    expect(page.locator("#link")).to_have_text("connected")


def start(page: Page, robot: Stack, button: str, mode: str) -> dict[str, Any]:
    page.click(button)
    expect(page.locator("#lease")).to_have_text("You have control")
    status = robot.wait_status(lambda s: s["mode"] == mode, 10, f"mode {mode}")
    expect(page.locator("#mode")).to_have_attribute("data-mode", mode)
    return status


def test_gamepad_deadman_moves_the_end_effector_and_release_holds(page: Page, robot: Stack) -> None:
    install_gamepad(page)
    open_operate(page)
    expect(page.locator("#device")).to_contain_text("gamepad: Test pad")
    start(page, robot, "#start-demo", "teleop")
    before = ee(robot.wait_steps(2))

    set_pad(page, axes=LEFT_STICK_UP, pressed={RB: True})
    moved = robot.wait_status(
        lambda s: ee(s)[0] - before[0] > 0.03, 20, "the end effector to move forward (+x)"
    )
    delta = [a - b for a, b in zip(ee(moved), before, strict=True)]
    assert abs(delta[1]) < 0.5 * delta[0] and abs(delta[2]) < 0.5 * delta[0], delta
    expect(page.locator("#device-input")).to_contain_text("RB")

    # Letting go of the deadman holds the robot even with the stick still pushed.
    set_pad(page, axes=LEFT_STICK_UP, pressed={RB: False})
    settled = ee(robot.wait_steps(3))
    later = ee(robot.wait_steps(10))
    drift = max(abs(a - b) for a, b in zip(later, settled, strict=True))
    assert drift < 0.005, f"robot moved {drift:.4f} m after the deadman was released"
    assert robot.status()["mode"] == "teleop"  # type: ignore[index]


def test_hold_to_take_over_switches_to_intervention_and_back(page: Page, robot: Stack) -> None:
    open_operate(page)
    start(page, robot, "#start-rollout", "rollout")
    box = page.locator("#takeover").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    robot.wait_status(lambda s: s["mode"] == "intervention", 10, "mode intervention")
    expect(page.locator("#mode")).to_have_attribute("data-mode", "intervention")
    expect(page.locator("#takeover")).to_have_class("big held")
    page.mouse.up()
    robot.wait_status(lambda s: s["mode"] == "rollout", 10, "mode rollout again")
    expect(page.locator("#mode")).to_have_attribute("data-mode", "rollout")


def test_gamepad_deadman_takes_over_a_rollout(page: Page, robot: Stack) -> None:
    install_gamepad(page)
    open_operate(page)
    start(page, robot, "#start-rollout", "rollout")
    set_pad(page, pressed={RB: True})
    robot.wait_status(lambda s: s["mode"] == "intervention", 10, "mode intervention")
    set_pad(page, pressed={RB: False})
    robot.wait_status(lambda s: s["mode"] == "rollout", 10, "mode rollout again")


def test_success_label_reaches_the_database_and_reset_done_starts_the_next_episode(
    page: Page, robot: Stack
) -> None:
    open_operate(page)
    first = start(page, robot, "#start-demo", "teleop")["episode_id"]
    robot.wait_steps(3)
    page.click("#success")
    robot.wait_status(lambda s: s["mode"] == "await_reset", 10, "mode await_reset")
    expect(page.locator("#mode")).to_have_attribute("data-mode", "await_reset")

    def labelled() -> Any:
        res = robot.http.get(f"/api/episodes/{first}")
        return res.status_code == 200 and res.json()["outcome"] == "success" and res.json()

    row = wait_for(labelled, 15, f"episode {first} labelled success in the database")
    assert row["kind"] == "demo" and row["length"] >= 3
    assert robot.state.store.episodes.get_episode(first).outcome == "success"

    page.click("#reset-done")
    nxt = robot.wait_status(
        lambda s: s["mode"] == "teleop" and s["episode_id"] not in (None, first),
        10,
        "the next demo episode",
    )
    expect(page.locator("#episode")).to_contain_text(nxt["episode_id"])


def test_keyboard_fallback_moves_the_end_effector(page: Page, robot: Stack) -> None:
    open_operate(page)
    start(page, robot, "#start-demo", "teleop")
    before = ee(robot.wait_steps(2))
    page.keyboard.down("KeyE")  # up (+z)
    robot.wait_status(lambda s: ee(s)[2] - before[2] > 0.03, 20, "the end effector to rise (+z)")
    page.keyboard.up("KeyE")
    expect(page.locator("#device")).to_have_text("keyboard")
    settled = ee(robot.wait_steps(3))
    later = ee(robot.wait_steps(5))
    assert max(abs(a - b) for a, b in zip(later, settled, strict=True)) < 0.005


def test_gamepad_buttons_label_and_reset(page: Page, robot: Stack) -> None:
    install_gamepad(page)
    open_operate(page)
    page.click("#claim")
    expect(page.locator("#lease")).to_have_text("You have control")
    for button, mode in ((9, "teleop"), (1, "await_reset"), (9, "teleop")):  # Start, B, Start
        set_pad(page, pressed={button: True})
        robot.wait_status(lambda s, m=mode: s["mode"] == m, 10, f"mode {mode}")
        set_pad(page, pressed={button: False})
        # What Start does depends on the mode, so the page must have seen the new one.
        expect(page.locator("#mode")).to_have_attribute("data-mode", mode)


def test_estop_latches_and_clears_from_the_dashboard(page: Page, robot: Stack) -> None:
    open_operate(page)
    start(page, robot, "#start-demo", "teleop")
    page.click("#estop")
    robot.wait_status(lambda s: s["mode"] == "estop", 10, "mode estop")
    expect(page.locator("#mode")).to_have_attribute("data-mode", "estop")
    expect(page.locator("#estop")).to_have_class("estop latched")
    expect(page.locator("#start-demo")).to_be_disabled()  # nothing starts while latched
    expect(page.locator("#why-disabled")).to_contain_text(
        "Start demo, Start rollout, Take over, Success, Failure, Discard, Reset done: "
        "the e-stop is latched: clear it first"
    )
    page.click("#clear-estop")
    robot.wait_status(lambda s: s["mode"] == "idle", 10, "mode idle")
    expect(page.locator("#clear-estop")).to_be_hidden()


def why(page: Page, *ids: str) -> Any:
    """The line that says why these buttons (together) are disabled."""
    return page.locator(f'#why-disabled li[data-for="{" ".join(ids)}"]')


def test_buttons_are_enabled_by_mode_and_say_why_not(page: Page, robot: Stack) -> None:
    open_operate(page)
    expect(page.locator("#mode")).to_have_attribute("data-mode", "idle")
    for button in ("#success", "#failure", "#discard", "#reset-done", "#takeover"):
        expect(page.locator(button)).to_be_disabled()
    labels = why(page, "success", "failure", "discard")
    expect(labels).to_have_text(
        "Success, Failure, Discard: only while an episode runs or in await reset"
    )
    expect(why(page, "reset-done")).to_have_text(
        "Reset done: only in await reset, after an episode"
    )
    expect(why(page, "takeover")).to_have_text("Take over: only during a rollout")
    expect(page.locator("#start-demo")).to_be_enabled()  # pressing it takes control first

    # Control held on another page: this one cannot start anything, and says so.
    other = page.context.new_page()
    other.goto("/")
    other.click("#claim")
    expect(other.locator("#lease")).to_have_text("You have control")
    expect(page.locator("#start-demo")).to_be_disabled()
    expect(why(page, "start-demo", "start-rollout")).to_have_text(
        "Start demo, Start rollout: you have control on another page"
    )
    doc_screenshot(page, "operate_disabled_reasons.png")
    other.close()
    expect(page.locator("#start-demo")).to_be_enabled()

    # During a demo the labels work and starting another episode does not.
    start(page, robot, "#start-demo", "teleop")
    expect(page.locator("#success")).to_be_enabled()
    expect(why(page, "start-demo", "start-rollout")).to_have_text(
        "Start demo, Start rollout: an episode is running: label it first"
    )


def test_refused_input_says_why_and_nothing_reaches_the_bridge(page: Page, robot: Stack) -> None:
    log_before = robot.bridge_log.read_text().count("teleop_action refused")
    open_operate(page)
    refused = page.locator("#input-refused")
    expect(refused).to_be_hidden()
    page.keyboard.down("KeyW")  # without control: the page does not send it
    expect(refused).to_have_text("Keys ignored: take control first (Take control, or Start demo)")
    page.keyboard.up("KeyW")
    page.click("#claim")
    expect(page.locator("#lease")).to_have_text("You have control")
    page.keyboard.down("KeyW")  # with control, in idle: the server refuses it
    expect(refused).to_have_text("Input refused: the robot is in idle; press Start demo to drive")
    doc_screenshot(page, "operate_input_refused.png")
    page.keyboard.up("KeyW")
    expect(refused).to_be_hidden()  # the notice goes once the input stops
    assert robot.status()["mode"] == "idle"  # type: ignore[index]
    # The server did not forward it, so the bridge logged no refusal.
    assert robot.bridge_log.read_text().count("teleop_action refused") == log_before
    # Driving is allowed in a demo: the notice does not come back.
    start(page, robot, "#start-demo", "teleop")
    before = ee(robot.wait_steps(2))
    page.keyboard.down("KeyE")
    robot.wait_status(lambda s: ee(s)[2] - before[2] > 0.02, 20, "the end effector to rise")
    page.keyboard.up("KeyE")
    expect(refused).to_be_hidden()


def test_robot_panel_shows_step_limit_gripper_and_orientation(page: Page, robot: Stack) -> None:
    open_operate(page)
    start(page, robot, "#start-demo", "teleop")
    expect(page.locator("#step")).to_have_text(re.compile(r"^\d+ / 2000$"))
    expect(page.locator("#gripper")).to_have_text(re.compile(r"^open \(\d+ %\)$"))
    rpy = page.locator("#ee-rpy")
    expect(rpy).to_have_text(re.compile(r"^roll -?\d+\.\d° {2}pitch -?\d+\.\d° {2}yaw -?\d+\.\d°$"))
    before = rpy.inner_text()
    page.keyboard.down("ArrowLeft")  # +yaw
    expect(rpy).not_to_have_text(before, timeout=20_000)
    page.keyboard.up("ArrowLeft")
    page.keyboard.down("Space")  # close the gripper (held for a few control ticks)
    expect(page.locator("#gripper")).to_have_text(re.compile(r"^closed "), timeout=20_000)
    page.keyboard.up("Space")
    expect(page.locator("#keymap")).to_be_visible()
    expect(page.locator("#keymap")).to_contain_text("1 success · 2 failure · 3 discard")
