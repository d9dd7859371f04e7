"""Honest figures and evaluation batches in a real Chromium.

* The training page shows the learner's three figures apart (autonomous success, success
  with help, intervention rate), plots its metric curves against env steps or weights
  version on request, and draws the stored evaluation batches as autonomous success
  against env steps.
* An operator starts an evaluation batch from the dashboard: the sim bridge runs it (the
  scene resets itself between episodes) and the training page lists the stored result;
  the episodes page shows each episode's result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from playwright.sync_api import Page, expect

from tandem import wire
from tandem.messages import EpisodeKind, LearnerMetrics
from tests.server.store._support import write_episode
from tests.web.harness import Stack, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

FIGURES = {
    "episode/autonomous_success_rate": 0.25,
    "episode/assisted_success_rate": 0.75,
    "hil/intervention_rate": 0.4,
}
# (batch, weights version, env steps at that version, successes out of 4)
BATCHES = [("ui-b1", 101, 1000, 1), ("ui-b2", 102, 3000, 3), ("ui-b3", 103, 6000, 4)]


@pytest.fixture
def metrics_pub(stack: Stack) -> Iterator[zmq.Socket]:
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(stack.metrics_endpoint)
    yield pub
    pub.close()


def store_eval_batches(stack: Stack) -> None:
    """Three stored batches; the learner's metrics history says when each version was current."""
    store = stack.state.store
    t0 = time.time() - 600
    for i, (batch, version, env_steps, wins) in enumerate(BATCHES):
        store.metrics.record_metrics(
            "ui-run", t0 + 10 * i, {"weights/version": version, "learner/env_steps": env_steps}
        )
        for k in range(4):
            write_episode(
                store.episodes, f"{batch}-{k}", robot="ui-robot", kind=EpisodeKind.EVALUATION, n=3,
                outcome=None, success=k < wins, started=t0 + 100 * i + k,
                extra={"weights_version": version, "eval_batch": batch, "eval_index": k + 1},
            )  # fmt: skip


def metrics(i: int) -> list[bytes]:
    values: dict[str, float | None] = {
        **FIGURES,
        "learner/env_steps": 500.0 + 10 * i,
        "weights/version": 7.0 + i // 10,
        "critic/loss": 1.0 / (1 + i),
        "learner/state": 2.0,  # waiting_for_demos (learner/service/metrics.py STATES)
        "learner/demos": 1.0,
        "learner/demos_required": 3.0,
    }
    msg = LearnerMetrics(
        run_id="ui-run-live", update_step=i, env_steps=500 + 10 * i, metrics=values
    )
    return wire.encode(msg)


def test_training_page_shows_three_figures_and_the_eval_curve(
    page: Page, stack: Stack, metrics_pub: zmq.Socket
) -> None:
    store_eval_batches(stack)
    page.goto("/training.html")
    expect(page.locator("#link")).to_have_text("connected")
    sent = 0

    def received() -> bool:
        nonlocal sent
        metrics_pub.send_multipart(metrics(sent))  # keep publishing: the SUB joins late
        sent += 1
        return page.evaluate("window.tandem.summary().metricsReceived") >= 25

    wait_for(received, 30, "25 metrics rows", interval=0.05)
    expect(page.locator("#learner")).to_contain_text("waiting for demos (1/3)")
    # Three separate figures, none of them a mixed "success rate".
    expect(page.locator("#fig-autonomous")).to_have_text("25 %")
    expect(page.locator("#fig-assisted")).to_have_text("75 %")
    expect(page.locator("#fig-intervention")).to_have_text("40 %")

    # The evaluation curve: autonomous success per batch against env steps, in order.
    evals = page.evaluate("window.tandem.summary().evals")
    assert evals["x"][-3:] == [1000, 3000, 6000], evals
    assert evals["y"][-3:] == [0.25, 0.75, 1.0], evals
    expect(page.locator("#fig-eval")).to_have_text("100 %")
    last = page.locator('#eval-rows tr[data-batch="ui-b3"]')
    expect(last).to_contain_text("v103")
    expect(last).to_contain_text("6000")
    expect(last).to_contain_text("4/4")

    # Curves against env steps, then weights version, instead of wall time.
    page.select_option("#x-axis", "env_steps")
    page.wait_for_function(
        "() => { const c = window.tandem.charts.get('loss');"
        " return c && c.axis === 'env_steps' && c.plot && c.plot.data[0].length >= 20; }"
    )
    xs = page.evaluate("window.tandem.charts.get('loss').plot.data[0]")
    assert all(500 <= x <= 500 + 10 * sent for x in xs), xs[:5]
    assert xs == sorted(xs) and xs[-1] - xs[0] >= 190
    page.select_option("#x-axis", "weights_version")
    page.wait_for_function(
        "() => { const c = window.tandem.charts.get('loss');"
        " return c.axis === 'weights_version' && c.plot && c.plot.data[0].length >= 20; }"
    )
    versions = set(page.evaluate("window.tandem.charts.get('loss').plot.data[0]"))
    assert versions <= {7.0 + k for k in range(sent // 10 + 1)} and len(versions) >= 2

    # The operate page says what the learner waits for, too.
    operate = page.context.new_page()
    operate.goto("/")

    def says_waiting() -> bool:
        nonlocal sent
        metrics_pub.send_multipart(metrics(sent))
        sent += 1
        return operate.locator("#learner").inner_text().startswith("waiting for demos (1/3)")

    wait_for(says_waiting, 20, "the learner's state on the operate page", interval=0.2)
    operate.close()


def eval_row(stack: Stack) -> dict[str, Any] | None:
    batches = stack.http.get("/api/evals?robot=robot0").raise_for_status().json()
    return batches[-1] if batches and batches[-1]["episodes"] >= 2 else None


def test_operator_starts_an_eval_batch_from_the_dashboard(robot: Stack, page: Page) -> None:
    before = len(robot.http.get("/api/evals?robot=robot0").json())
    page.goto("/training.html")
    expect(page.locator("#link")).to_have_text("connected")
    page.fill("#eval-episodes", "0")
    page.click("#start-eval")
    expect(page.locator("#toast")).to_contain_text("whole number of episodes")
    page.fill("#eval-episodes", "2")
    page.click("#start-eval")
    robot.wait_status(lambda s: (s.get("eval") or {}).get("total") == 2, 10, "a batch of 2")
    expect(page.locator("#eval-progress")).to_contain_text("Evaluation 0/2")
    expect(page.locator("#stop-eval")).to_be_visible()
    # The sim resets itself: both episodes run without anyone pressing Reset done.
    batch = wait_for(lambda: eval_row(robot), 90, "2 stored evaluation episodes")
    assert len(robot.http.get("/api/evals?robot=robot0").json()) == before + 1
    assert batch["successes"] == 2 and batch["success_rate"] == 1.0  # the expert policy
    expect(page.locator("#eval-progress")).to_contain_text("Evaluation 2/2: 2 autonomous")
    expect(page.locator("#eval-progress")).to_contain_text("done")
    expect(page.locator(f'#eval-rows tr[data-batch="{batch["batch"]}"]')).to_contain_text("2/2")
    expect(page.locator("#stop-eval")).to_be_hidden()
    listed = robot.http.get(f"/api/episodes?eval_batch={batch['batch']}").json()["items"]
    assert {e["kind"] for e in listed} == {"evaluation"}
    assert {e["result"] for e in listed} == {"autonomous_success"}

    # The episodes page shows the result of each of them.
    page.goto("/episodes.html")
    page.select_option("#f-kind", "evaluation")
    row = page.locator(f'tr[data-episode="{listed[0]["id"]}"]')
    expect(row.locator("td.result")).to_have_text("autonomous success")
    page.select_option("#f-result", "failure")
    expect(row).to_be_hidden()


def test_operate_page_eval_batch_take_over_fails_it_and_stop(robot: Stack, page: Page) -> None:
    """Start from the operate page; a take-over ends the evaluation episode as a failure and
    the sim waits for reset done; reset done goes on with the batch; stop ends it."""
    page.goto("/")
    expect(page.locator("#link")).to_have_text("connected")
    page.fill("#eval-episodes", "3")
    page.click("#start-eval")
    first = robot.wait_status(
        lambda s: s["mode"] == "rollout" and s["episode_kind"] == "evaluation", 10,
        "an evaluation episode",
    )  # fmt: skip
    expect(page.locator("#eval-progress")).to_contain_text("running")
    robot.wait_steps(3)
    take_over = page.locator("#takeover")
    take_over.dispatch_event("pointerdown", {"pointerId": 1, "isPrimary": True})
    status = robot.wait_status(lambda s: s["mode"] == "await_reset", 10, "the episode ended")
    take_over.dispatch_event("pointerup", {"pointerId": 1, "isPrimary": True})
    assert status["eval"]["done"] == 1 and status["eval"]["successes"] == 0
    assert status["eval"]["running"]
    expect(page.locator("#eval-progress")).to_contain_text("Evaluation 1/3: 0 autonomous")

    def stored() -> Any:
        res = robot.http.get(f"/api/episodes/{first['episode_id']}")
        return res.status_code == 200 and not res.json()["recording"] and res.json()

    row = wait_for(stored, 20, "the taken-over evaluation episode in the database")
    assert (row["result"], row["end_reason"], row["intervention_steps"]) == (
        "failure", "take_over", 0,
    )  # fmt: skip
    time.sleep(0.5)
    assert robot.status()["mode"] == "await_reset", "after a take-over the sim waits for a reset"
    page.click("#reset-done")
    robot.wait_status(
        lambda s: s["mode"] == "rollout" and s["episode_id"] != first["episode_id"], 10,
        "the batch's next episode",
    )  # fmt: skip
    page.click("#stop-eval")
    status = robot.wait_status(lambda s: not s["eval"]["running"], 10, "the batch stopped")
    assert status["mode"] == "await_reset" and status["eval"]["done"] == 1
    expect(page.locator("#eval-progress")).to_contain_text("stopped")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"learner/warmup_rollouts": 1.0}, "IL-only warm-up (1/2 rollouts, 800/50000 updates)"),
        ({"learner/warmup_rollouts": 300.0}, "IL-only warm-up (800/50000 updates)"),
        ({"learner/warmup_rollouts": 300.0, "learner/update_step": 60000.0}, "training"),
    ],
)
def test_status_line_says_what_the_il_only_warm_up_waits_for(
    page: Page, stack: Stack, extra: dict[str, float], expected: str
) -> None:
    page.goto("/training.html")
    scalars = {
        "learner/state": 5.0,  # training (learner/service/metrics.py STATES)
        "learner/il_only": 1.0,
        "learner/warmup_rollouts_required": 2.0,
        "learner/warmup_updates_required": 50000.0,
        "learner/update_step": 800.0,
        **extra,
    }
    status = page.evaluate(
        "async (m) => (await import('/js/learner.js')).learnerStatus(m)", scalars
    )
    assert status == expected
