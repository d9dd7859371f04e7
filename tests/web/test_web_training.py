"""Training page: learner metrics published over ZMQ are drawn; the rollout Q strip shades
the steps a human drove."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from playwright.sync_api import Page, expect

from tandem import wire
from tandem.messages import LearnerMetrics
from tests.web.devices import install_gamepad, set_pad
from tests.web.harness import PageErrors, Stack, wait_for
from tests.web.test_web_episodes import record_demo

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

RB = 5

# One metric per chart group, plus one the page has never heard of.
METRICS = {
    "eval/success_rate": "success",
    "rollout/return": "success",
    "hil/intervention_rate": "intervention",
    "critic/loss": "q",
    "q/mean": "q",
    "ibrl/bc_selected_frac": "ibrl",
    "perf/updates_per_s": "rate",
    "buffer/demo_size": "buffer",
    "weights/version": "weights",
    "something/new": "other",
}


@pytest.fixture
def metrics_pub(stack: Stack) -> Iterator[zmq.Socket]:
    """A learner stand-in: a PUB bound on the endpoint the server subscribes to."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(stack.metrics_endpoint)
    yield pub
    pub.close()


def metrics_message(i: int) -> list[bytes]:
    values: dict[str, float | None] = {name: float(i % 7) / 7 + k for k, name in enumerate(METRICS)}
    values["q/mean"] = None if i == 0 else values["q/mean"]  # "no value yet" travels as null
    msg = LearnerMetrics(run_id="test-run", update_step=100 * i, env_steps=10 * i, metrics=values)
    return wire.encode(msg)


def test_training_page_draws_published_metrics(
    page: Page, stack: Stack, metrics_pub: zmq.Socket
) -> None:
    page.goto("/training.html")
    expect(page.locator("#link")).to_have_text("connected")
    sent = 0

    def drawn() -> bool:
        nonlocal sent
        metrics_pub.send_multipart(metrics_message(sent))  # keep publishing: SUB joins late
        sent += 1
        summary = page.evaluate("window.tandem.summary()")
        return summary["metricsReceived"] >= 30

    wait_for(drawn, 30, "30 metrics rows on the training page", interval=0.05)
    summary = page.evaluate("window.tandem.summary()")
    names = {name: c["title"] for c in summary["charts"] for name in c["names"]}
    assert set(names) == set(METRICS)
    groups = {c["title"]: c for c in summary["charts"]}
    assert len(groups) == len(set(METRICS.values()))
    page.wait_for_function(
        "() => document.querySelectorAll('#charts .uplot canvas').length >= 8"
        " && [...window.tandem.charts.values()].every((c) => c.plot && c.plot.data[0].length >= 30)"
    )
    expect(page.locator("#run")).to_have_text("test-run")
    expect(page.locator("#no-metrics")).to_be_hidden()

    # A page opened later starts from the stored history (nothing is published any more).
    page.reload()
    page.wait_for_function("window.tandem.historyRows >= 2")
    page.wait_for_function(
        "() => window.tandem.summary().charts.length >= 8"
        " && [...window.tandem.charts.values()].every((c) => c.plot && c.plot.data[0].length >= 2)"
    )


def test_training_page_q_strip_shades_human_driven_steps(robot: Stack, page: Page) -> None:
    """An operator takes over a rollout with the gamepad on the operate page (second tab);
    the training page's Q strip shades those steps."""
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


def test_training_page_lists_stored_recent_episodes(robot: Stack, page: Page) -> None:
    """An episode that ended before the page was opened is in the recent-episodes table."""
    row = record_demo(robot)
    page.goto("/training.html")
    listed = page.locator(f'#recent tr[data-episode="{row["id"]}"]')
    expect(listed).to_be_visible()
    expect(listed).to_contain_text("demo")
    expect(listed).to_contain_text("success")
    expect(listed).to_contain_text(str(row["length"]))
