"""Episodes page: a demonstration recorded from the sim bridge is listed, replayed, labelled,
annotated, discarded, restored and exported in the browser."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tandem.messages import EndEpisode, Outcome, StartDemo
from tests.web.harness import Stack, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

STEPS = 12


def record_demo(robot: Stack) -> dict[str, Any]:
    """Record a short demonstration through the server's bridge link; return its DB row."""
    assert robot.command(StartDemo(operator="tests")).ok
    episode = robot.wait_status(lambda s: s["mode"] == "teleop", 10, "mode teleop")["episode_id"]
    robot.wait_status(lambda s: s["step"] >= STEPS, 20, f"{STEPS} steps")
    assert robot.command(EndEpisode(label=Outcome.SUCCESS, operator="tests")).ok

    def finished() -> Any:
        res = robot.http.get(f"/api/episodes/{episode}")
        return res.status_code == 200 and not res.json()["recording"] and res.json()

    return wait_for(finished, 20, f"episode {episode} finished in the database")  # type: ignore[no-any-return]


def images_loaded(page: Page, step: int) -> None:
    page.wait_for_function(
        """(step) => {
          const imgs = [...document.querySelectorAll('#d-frames img')];
          return imgs.length > 0 && imgs.every(
            (i) => i.dataset.step === String(step) && i.complete && i.naturalWidth > 0);
        }""",
        arg=step,
    )


def test_episodes_page_replays_labels_and_exports_a_recorded_demo(page: Page, robot: Stack) -> None:
    row = record_demo(robot)
    episode, length = row["id"], row["length"]
    assert length >= STEPS

    page.goto("/episodes.html")
    page.select_option("#f-kind", "demo")
    listed = page.locator(f'tr[data-episode="{episode}"]')
    expect(listed).to_be_visible()
    expect(listed).to_contain_text("success")
    listed.click()

    # Replay: frames of step 0, then the scrubber moves to the last step.
    expect(page.locator("#d-id")).to_have_text(episode)
    images_loaded(page, 0)
    assert page.evaluate("window.tandem.timeline.data[0].length") == length
    page.locator("#scrubber").fill(str(length - 1))
    expect(page.locator("#d-step")).to_have_text(str(length - 1))
    images_loaded(page, length - 1)
    page.locator("#scrubber").fill("0")
    page.click("#play")  # plays at 10 steps/s
    page.wait_for_function("window.tandem.step >= 5")
    page.click("#play")  # pause
    expect(page.locator("#play")).to_have_text("Play")

    # Label, notes, discard and restore reach the database.
    page.click("#label-failure")
    expect(page.locator("#d-outcome")).to_contain_text("failure")
    wait_for(
        lambda: robot.state.store.episodes.get_episode(episode).outcome == "failure",
        10,
        "the failure label in the database",
    )
    page.fill("#notes", "gripper slipped at the end")
    page.click("#save-notes")
    wait_for(
        lambda: (
            robot.state.store.episodes.get_episode(episode).notes == "gripper slipped at the end"
        ),
        10,
        "the notes in the database",
    )
    page.click("#discard")
    expect(page.locator("#restore")).to_be_visible()
    assert robot.state.store.episodes.get_episode(episode).discarded
    page.click("#restore")
    expect(page.locator("#discard")).to_be_visible()
    assert not robot.state.store.episodes.get_episode(episode).discarded

    with page.expect_download() as info:
        page.click("#export")
    path = info.value.path()
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n", "the export is not an HDF5 file"
