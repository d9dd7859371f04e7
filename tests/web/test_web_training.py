"""Training page: learner metrics published over ZMQ are drawn (one unit per chart, readable
time axes); the status line says what the learner does; the run selector shows stored runs;
the rollout Q strip shades the steps a human drove; recent episodes link to their replay.

The learner is a stand-in PUB socket (``metrics_pub``) that publishes the metrics a real
learner publishes (names in docs/learner_service.md), so its states can be stepped through
in seconds instead of a full ``tandem up`` run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import zmq
from playwright.sync_api import Page, expect

from tandem import wire
from tandem.messages import LearnerMetrics
from tests.web.docshots import doc_screenshot
from tests.web.harness import Stack, wait_for
from tests.web.test_web_episodes import record_demo

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

RB = 5

# One metric per chart group, plus one the page has never heard of.
METRICS = {
    "eval/success_rate": "success",
    "rollout/return": "return",
    "hil/intervention_rate": "intervention",
    "data/intervention_segments": "episodes",  # a count: never on the rate's axis
    "data/intervention_steps": "steps",
    "critic/loss": "loss",
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
    units = {name: c["unit"] for c in summary["charts"] for name in c["names"]}
    assert units["hil/intervention_rate"] == "fraction"
    assert units["data/intervention_segments"] == "count"
    page.wait_for_function(
        "() => document.querySelectorAll('#charts .uplot canvas').length >= 8"
        " && [...window.tandem.charts.values()].every((c) => c.plot && c.plot.data[0].length >= 30)"
    )
    expect(page.locator("#run")).to_have_text("test-run")
    expect(page.locator("#no-metrics")).to_be_hidden()
    assert_readable_time_axes(page)

    # A page opened later starts from the stored history (nothing is published any more).
    page.reload()
    page.wait_for_function("window.tandem.historyRows >= 2")
    page.wait_for_function(
        "() => window.tandem.summary().charts.length >= 8"
        " && [...window.tandem.charts.values()].every((c) => c.plot && c.plot.data[0].length >= 2)"
    )


def test_training_page_lists_stored_recent_episodes(robot: Stack, page: Page) -> None:
    """An episode that ended before the page was opened is in the recent-episodes table."""
    row = record_demo(robot)
    page.goto("/training.html")
    listed = page.locator(f'#recent tr[data-episode="{row["id"]}"]')
    expect(listed).to_be_visible()
    expect(listed).to_contain_text("demo")
    expect(listed).to_contain_text("success")
    expect(listed).to_contain_text(str(row["length"]))


TIME_LABEL = re.compile(r"^(\d{1,2} \w+\.? )?\d\d:\d\d(:\d\d)?$|^\d{1,2} \w+\.?$")


def assert_readable_time_axes(page: Page) -> None:
    """Every chart on the time axis: whole-second (or coarser) tick labels, all distinct, and
    legend values that show the newest point without hovering (never "--")."""
    page.mouse.move(0, 0)
    page.wait_for_function(
        "() => window.tandem.summary().charts.every((c) => c.plotted === c.points"
        " && c.xTicks.length > 0)"
    )
    charts = page.evaluate("window.tandem.summary().charts")
    for chart in charts:
        assert chart["axis"] == "time"
        ticks = [t for t in chart["xTicks"] if t]
        assert ticks, chart
        assert all(TIME_LABEL.match(t) for t in ticks), (chart["title"], ticks)
        assert len(set(ticks)) == len(ticks), (chart["title"], ticks)
        assert "--" not in chart["legend"][1:], (chart["title"], chart["legend"])


# ----------------------------------------------------------------- learner status line
STATE = {"waiting_for_demos": 2.0, "pretraining": 3.0, "training": 5.0}  # learner/service


def learner_metrics(run_id: str, values: dict[str, float]) -> list[bytes]:
    msg = LearnerMetrics(run_id=run_id, update_step=0, env_steps=0, metrics=values)
    return wire.encode(msg)


def publish_until(
    page: Page, pub: zmq.Socket, run_id: str, values: dict[str, float], shows: tuple[str, str]
) -> None:
    """Publish the learner's metrics (as it does, every 0.5 s or faster) until the status
    line says ``shows`` = (text, data-state)."""
    text, state = shows
    status = page.locator("#learner")

    def shown() -> bool:
        pub.send_multipart(learner_metrics(run_id, values))
        return bool(status.text_content() == text and status.get_attribute("data-state") == state)

    try:
        wait_for(shown, 20, f"status line {text!r}", interval=0.1)
    except pytest.fail.Exception:
        pytest.fail(f"status line shows {status.text_content()!r}, expected {text!r}")


def test_status_line_goes_through_the_learner_states(
    page: Page, stack: Stack, metrics_pub: zmq.Socket
) -> None:
    """Waiting for demos (n/m) -> pre-training x % -> training, published vN -> learner down,
    as an operator records demos and the learner pre-trains and publishes."""
    run = f"status-{time.time_ns()}"
    page.goto("/training.html")
    expect(page.locator("#link")).to_have_text("connected")
    gates = {"learner/demos_required": 2.0, "learner/demo_steps_required": 0.0}
    waiting = {"learner/state": STATE["waiting_for_demos"], **gates, "weights/version": 0.0}
    publish_until(
        page,
        metrics_pub,
        run,
        {**waiting, "learner/demos": 0.0},
        ("waiting for demos (0/2)", "waiting_for_demos"),
    )
    publish_until(
        page,
        metrics_pub,
        run,
        {**waiting, "learner/demos": 1.0},
        ("waiting for demos (1/2)", "waiting_for_demos"),
    )
    doc_screenshot(page, "training_status_waiting.png")
    pretraining = {"learner/state": STATE["pretraining"], "learner/demos": 2.0, **gates}
    publish_until(
        page,
        metrics_pub,
        run,
        {**pretraining, "bc/pretrain_progress": 0.4},
        ("pre-training 40 %", "pretraining"),
    )
    training = {"learner/state": STATE["training"], "learner/il_only": 0.0, **gates}
    publish_until(
        page,
        metrics_pub,
        run,
        {**training, "weights/version": 1.0},
        ("training · published v1", "training"),
    )
    publish_until(
        page,
        metrics_pub,
        run,
        {**training, "weights/version": 2.0},
        ("training · published v2", "training"),
    )
    doc_screenshot(page, "training_status.png")
    # The learner stops publishing (killed, crashed): the line says so by itself.
    expect(page.locator("#learner")).to_have_attribute("data-state", "down", timeout=20_000)
    expect(page.locator("#learner")).to_contain_text("learner down: no metrics for")
    expect(page.locator("#learner")).to_contain_text("(last published v2)")


# ----------------------------------------------------------------- run selector
def loss_values(page: Page) -> list[float]:
    return page.evaluate(  # type: ignore[no-any-return]
        "() => (window.tandem.charts.get('loss')?.rows ?? []).map((r) => r.values['critic/loss'])"
    )


def test_run_selector_shows_a_chosen_run_and_follows_the_newest(
    page: Page, stack: Stack, metrics_pub: zmq.Socket
) -> None:
    """Two stored runs: the selector lists both and shows the one chosen; "newest (live)"
    switches to a run that starts while the page is open."""
    stamp = time.time_ns()
    old, older, new = f"run-b-{stamp}", f"run-a-{stamp}", f"run-c-{stamp}"
    now = time.time()
    for run, loss, start in ((older, 1.0, now - 7200), (old, 2.0, now - 3600)):
        for i in range(20):
            stack.state.store.metrics.record_metrics(
                run, start + 60 * i, {"critic/loss": loss + i / 100}
            )
    page.goto("/training.html")
    expect(page.locator("#link")).to_have_text("connected")
    select = page.locator("#run-select")
    expect(select.locator(f'option[value="{older}"]')).to_have_count(1)
    expect(select.locator(f'option[value="{old}"]')).to_have_count(1)

    select.select_option(older)
    expect(page.locator("#run")).to_have_text(older)
    page.wait_for_function("(window.tandem.charts.get('loss')?.rows.length ?? 0) >= 20")
    assert {round(v) for v in loss_values(page)} == {1}
    select.select_option(old)
    expect(page.locator("#run")).to_have_text(old)
    page.wait_for_function("(window.tandem.charts.get('loss')?.rows.length ?? 0) >= 20")
    assert {round(v) for v in loss_values(page)} == {2}
    assert_readable_time_axes(page)  # an hour of history: minutes, no overlap
    doc_screenshot(page.locator("section", has=select), "training_runs.png")

    # A run chosen stays shown while another publishes; "newest (live)" follows the new one.
    def listed() -> bool:
        metrics_pub.send_multipart(learner_metrics(new, {"critic/loss": 3.0}))
        return select.locator(f'option[value="{new}"]').count() == 1

    wait_for(listed, 20, "the new run in the selector", interval=0.1)
    expect(page.locator("#run")).to_have_text(old)
    assert {round(v) for v in loss_values(page)} == {2}
    select.select_option("")

    def following() -> bool:
        metrics_pub.send_multipart(learner_metrics(new, {"critic/loss": 3.0}))
        return page.locator("#run").text_content() == new and 3.0 in loss_values(page)

    wait_for(following, 20, "the newest run drawn", interval=0.1)
    assert {round(v) for v in loss_values(page)} == {3}


def test_recent_episodes_link_to_their_replay(robot: Stack, page: Page) -> None:
    """A recent episode opens its replay on the Episodes page, with the same outcome words."""
    row = record_demo(robot)
    page.goto("/training.html")
    listed = page.locator(f'#recent tr[data-episode="{row["id"]}"]')
    outcome = listed.locator('td[data-role="outcome"]').text_content()
    listed.get_by_role("link", name=row["id"]).click()
    expect(page).to_have_url(re.compile(r"/episodes\.html\?episode="))
    expect(page.locator("#d-id")).to_have_text(row["id"])
    expect(page.locator("#d-outcome")).to_have_text(outcome or "")
