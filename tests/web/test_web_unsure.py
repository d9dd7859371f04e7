"""The operate page draws the policy's per-step uncertainty and turns its "unsure" badge on
while the recent mean is at or above the server's threshold (teleop.unsure_threshold); its
policy line says what acts (the learner's weights, the scripted expert, or the explorer).

Its own stack: the real server and Chromium, with a stand-in bridge (``FakeBridge``, real
ZMQ) that publishes rollout steps whose ``policy_info.uncertainty`` the test chooses, so the
signal can be made to cross the threshold on cue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from server.app import create_app
from server.fake_bridge import FakeBridge
from tandem.messages import ActionSource, ControlMode, EpisodeKind, PolicyInfo, StepRecord
from tandem.settings import load_settings
from tests.polling import free_port
from tests.web.docshots import doc_screenshot
from tests.web.harness import ARTIFACTS, REPO, PageErrors, serve, session_token, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
THRESHOLD, WINDOW = 0.3, 3


class Robot:
    """The stand-in bridge: status and rollout steps of one episode, published on demand."""

    def __init__(self, bridge: FakeBridge) -> None:
        self.bridge = bridge
        self.step = 0

    def publish(self, uncertainty: float | None, episode: str = "ep-1") -> int:
        self.bridge.publish_status(mode=ControlMode.ROLLOUT, episode_id=episode, step=self.step)
        info = PolicyInfo(proposal="rl", q_il=0.1, q_rl=0.2, uncertainty=uncertainty)
        self.bridge.publish(
            StepRecord(
                robot_id=self.bridge.robot_id, episode_id=episode,
                episode_kind=EpisodeKind.ROLLOUT, step=self.step, mode=ControlMode.ROLLOUT,
                state=[0.0] * 21, action=[0.0] * 7, policy_action=[0.0] * 7,
                action_source=ActionSource.POLICY, t_obs=time.monotonic(), policy_info=info,
            )
        )  # fmt: skip
        self.step += 1
        return self.step - 1


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBridge]:
    bridge = FakeBridge("robot0").start()
    yield bridge
    bridge.stop()


@pytest.fixture(scope="module")
def served(fake: FakeBridge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """(base URL, session token) of the real server wired to the stand-in bridge."""
    port = free_port()
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("web-unsure") / "data",
        server={
            "host": "127.0.0.1", "port": port, "bridges": [fake.pub_endpoint],
            "bridge_cmd_endpoints": [fake.cmd_endpoint], "web_dir": str(REPO / "web"),
        },
        teleop={"unsure_threshold": THRESHOLD, "unsure_window": WINDOW},
    )  # fmt: skip
    login_urls: list[str] = []
    server, thread = serve(create_app(settings, on_login_url=login_urls.append), port)
    base_url = f"http://127.0.0.1:{port}"
    login = wait_for(lambda: login_urls, 10, "the login URL")[0]
    yield base_url, session_token(base_url, login)
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def operate(browser: Browser, served: tuple, fake: FakeBridge) -> Iterator[Page]:
    """The operate page, once it shows the stand-in robot."""
    base_url, token = served
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": "tandem_token", "value": token, "url": base_url}])
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = PageErrors()
    page.on("console", errors.console)
    page.on("pageerror", errors.page_error)
    page.goto("/")
    try:
        expect(page.locator("#link")).to_have_text("connected")
    except AssertionError:
        pytest.fail(f"the page did not connect: {errors.messages}")

    def robot_shown() -> bool:
        fake.publish_status(mode=ControlMode.ROLLOUT)
        return "robot0" in (page.text_content("#robot") or "")

    wait_for(robot_shown, 20, "the stand-in robot on the operate page", interval=0.2)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "operate_unsure.png"), full_page=True)
    context.close()
    assert not errors.messages, errors.messages


def feed(page: Page, robot: Robot, uncertainty: float | None, count: int) -> dict:
    """Publish ``count`` steps and wait until the page has drawn the last; its summary."""
    summary: dict = {}
    for _ in range(count):
        step = robot.publish(uncertainty)

        def drawn(step: int = step) -> dict | None:
            got = page.evaluate("window.tandem.unsure.summary()")
            return got if got["step"] == step else None

        summary = wait_for(drawn, 10, f"step {step} on the operate page", interval=0.02)
    return summary


def test_unsure_badge_turns_on_when_the_signal_crosses_the_threshold(
    operate: Page, fake: FakeBridge
) -> None:
    robot = Robot(fake)
    page = operate
    expect(page.locator("#unsure-sound")).not_to_be_checked()  # sound is off by default
    operate.check("#unsure-sound")  # a click: the gesture WebAudio needs
    calm = feed(page, robot, 0.1, WINDOW + 2)
    assert not calm["unsure"] and calm["threshold"] == THRESHOLD and calm["window"] == WINDOW
    expect(page.locator("#unsure")).to_be_hidden()
    expect(page.locator("#unsure-value")).to_contain_text("0.100")
    # One high step: the mean of the last 3 (0.1, 0.1, 0.6) is still under 0.3.
    one = feed(page, robot, 0.6, 1)
    assert not one["unsure"] and one["mean"] == pytest.approx(0.8 / 3)
    unsure = feed(page, robot, 0.6, 1)  # (0.1, 0.6, 0.6): 0.43 >= 0.3
    assert unsure["unsure"] and unsure["beeps"] == 1, unsure
    expect(page.locator("#unsure")).to_be_visible()
    expect(page.locator("#unsure")).to_have_text("unsure")
    page.evaluate("window.tandem.unsure.flush()")
    doc_screenshot(page.locator("section[aria-label='Policy uncertainty']"), "operate_unsure.png")
    feed(page, robot, 0.05, WINDOW)
    expect(page.locator("#unsure")).to_be_hidden()
    # A step of an old sender (no uncertainty) draws a gap and keeps the badge off.
    summary = feed(page, robot, None, 1)
    assert summary["last"] is None and not summary["unsure"]
    drawn = page.evaluate("window.tandem.unsure.summary().plotted")
    assert drawn >= WINDOW + 2, drawn


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"policy_ready": True, "policy_kind": "play"}, "explorer: the robot plays"),
        ({"policy_ready": True, "policy_kind": "expert"}, "scripted expert"),
        ({"policy_ready": True, "policy_kind": "learner", "weights_version": 4}, "weights v4"),
        ({"policy_ready": False, "policy_kind": "learner"}, "none loaded"),
    ],
)
def test_the_policy_line_says_what_acts(
    operate: Page, fake: FakeBridge, fields: dict, shown: str
) -> None:
    """'Let the robot play': the operator sees that the explorer, not a task policy, acts."""

    def says() -> bool:
        fake.publish_status(mode=ControlMode.ROLLOUT, **fields)
        return shown in (operate.text_content("#policy") or "")

    wait_for(says, 10, f"the policy line to say {shown!r}", interval=0.2)
