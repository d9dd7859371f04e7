"""VR page in an IWER-emulated WebXR session (``?emulate=iwer``) driving the sim bridge."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.web.harness import Stack, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def ee(status: dict[str, Any]) -> list[float]:
    assert status["ee_pos"] is not None, "the bridge reports no end-effector position"
    return list(status["ee_pos"])


def move_controller(page: Page, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> None:
    """Move the right controller by (dx, dy, dz) metres in WebXR local-floor (x right, y up,
    z back)."""
    page.evaluate(
        """([dx, dy, dz]) => {
          const p = window.__xrDevice.controllers.right.position;
          p.set(p.x + dx, p.y + dy, p.z + dz);
        }""",
        [dx, dy, dz],
    )


def button(page: Page, name: str, value: float) -> None:
    page.evaluate(
        "([name, v]) => window.__xrDevice.controllers.right.updateButtonValue(name, v)",
        [name, value],
    )


def frames_sent(page: Page) -> int:
    return int(page.evaluate("window.tandem.framesSent"))


def press(page: Page, robot: Stack, name: str) -> None:
    """Press and release a controller button across a few XR frames."""
    for value in (1.0, 0.0):
        n = frames_sent(page)
        button(page, name, value)
        page.wait_for_function(f"window.tandem.framesSent >= {n + 3}")


def enter_vr(page: Page) -> None:
    page.goto("/vr.html?emulate=iwer")
    expect(page.locator("#link")).to_have_text("connected")
    expect(page.locator("#enter-xr")).to_be_enabled()
    page.click("#enter-xr")
    expect(page.locator("#session")).to_have_text("immersive-vr running")
    expect(page.locator("#lease")).to_have_text("You have control")
    page.wait_for_function("window.tandem.framesSent >= 10")
    page.wait_for_function("window.tandem.hudAt > 0")  # the in-headset status panel was drawn


def test_clutch_moves_the_end_effector_the_matching_way_and_recenter_releases_it(
    page: Page, robot: Stack
) -> None:
    enter_vr(page)
    press(page, robot, "a-button")  # A when idle starts a demonstration
    robot.wait_status(lambda s: s["mode"] == "teleop", 10, "mode teleop after pressing A")

    button(page, "squeeze", 1.0)  # engage the clutch
    before = ee(robot.wait_steps(3))
    move_controller(page, dz=-0.10)  # 10 cm forward (WebXR -z) -> robot +x
    moved = robot.wait_status(
        lambda s: ee(s)[0] - before[0] > 0.05, 20, "the end effector to follow forward (+x)"
    )
    delta = [a - b for a, b in zip(ee(moved), before, strict=True)]
    assert abs(delta[1]) < 0.3 * delta[0] and abs(delta[2]) < 0.3 * delta[0], delta
    expect(page.locator("#clutch")).to_have_text("held")

    # A recenter (reference-space reset) releases the clutch: with the squeeze still held,
    # moving the controller no longer moves the robot.
    page.evaluate("window.__xrDevice.recenter()")
    held = ee(robot.wait_steps(5))
    move_controller(page, dx=0.10)  # 10 cm right -> would be robot -y
    after = ee(robot.wait_steps(10))
    drift = max(abs(a - b) for a, b in zip(after, held, strict=True))
    assert drift < 0.01, f"robot moved {drift:.4f} m after a recenter released the clutch"

    # A fresh squeeze re-engages from the current pose, without a jump, and drives again.
    button(page, "squeeze", 0.0)
    robot.wait_steps(2)
    button(page, "squeeze", 1.0)
    again = ee(robot.wait_steps(3))
    assert max(abs(a - b) for a, b in zip(again, after, strict=True)) < 0.01
    move_controller(page, dx=0.08)  # right -> robot -y
    robot.wait_status(
        lambda s: again[1] - ee(s)[1] > 0.04, 20, "the end effector to follow right (-y)"
    )


def test_headset_buttons_label_the_episode_and_reset(page: Page, robot: Stack) -> None:
    enter_vr(page)
    press(page, robot, "a-button")
    first = robot.wait_status(lambda s: s["mode"] == "teleop", 10, "mode teleop")["episode_id"]
    robot.wait_steps(2)
    press(page, robot, "b-button")  # B: failure
    robot.wait_status(lambda s: s["mode"] == "await_reset", 10, "mode await_reset")
    expect(page.locator("#mode")).to_have_attribute("data-mode", "await_reset")
    press(page, robot, "a-button")  # A after an episode: reset done -> next episode
    robot.wait_status(
        lambda s: s["mode"] == "teleop" and s["episode_id"] != first, 10, "the next episode"
    )

    def labelled() -> bool:
        res = robot.http.get(f"/api/episodes/{first}")
        return res.status_code == 200 and res.json()["outcome"] == "failure"

    wait_for(labelled, 15, f"episode {first} labelled failure in the database")


def test_session_losing_visibility_releases_the_clutch(page: Page, robot: Stack) -> None:
    enter_vr(page)
    press(page, robot, "a-button")
    robot.wait_status(lambda s: s["mode"] == "teleop", 10, "mode teleop")
    button(page, "squeeze", 1.0)
    before = ee(robot.wait_steps(3))
    move_controller(page, dy=0.06)  # up -> robot +z
    engaged = robot.wait_status(
        lambda s: ee(s)[2] - before[2] > 0.03, 20, "the end effector to follow up (+z)"
    )
    # The system UI covers the app: the clutch opens, further motion is ignored.
    page.evaluate("window.__xrDevice.updateVisibilityState('visible-blurred')")
    held = ee(robot.wait_steps(3))
    move_controller(page, dy=-0.06)
    after = ee(robot.wait_steps(8))
    drift = max(abs(a - b) for a, b in zip(after, held, strict=True))
    assert drift < 0.01, f"robot moved {drift:.4f} m while the session was blurred"
    assert ee(engaged)[2] > before[2]
