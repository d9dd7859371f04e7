// Training page: the learner's status in words, the policy's three figures, evaluation
// batches (start, curve against env steps), learner metrics of the chosen run (grouped uPlot
// charts, one unit each, against time, env steps or weights version), the rollout Q strip,
// recent episodes (linked to their replay).

import { setLink, startPage } from "./common.js";
import { GROUPS, MetricChart, QStrip, X_AXES, groupOf } from "./charts.js";
import { EvalChart, EvalControls } from "./evals.js";
import { LearnerTracker } from "./learner.js";
import { api } from "./net.js";
import { endText, outcomeText, replayHref } from "./outcomes.js";
import { ProcessesPanel } from "./processes.js";
import { Telemetry } from "./telemetry.js";
import { $, fmt, h, resultText, showMode, toast } from "./ui.js";

const FLUSH_MS = 100; // batched setData at <= 10 Hz
const RECENT_ROWS = 20;
const HISTORY_POINTS = 500; // per metric
const EVAL_RELOAD_MS = 1500; // after an evaluation episode ends: the recorder stores it first
const STATUS_MS = 1000; // the status line's clock: "learner down" needs no message to appear
// The three figures of docs/metrics.md, shown apart: never one "success rate" for both.
const FIGURES = {
  "episode/autonomous_success_rate": "fig-autonomous",
  "episode/assisted_success_rate": "fig-assisted",
  "hil/intervention_rate": "fig-intervention",
};

const page = {
  charts: new Map(),
  qstrip: null,
  processes: null,
  metricsReceived: 0,
  axis: "time",
  runId: null, // the run the charts show
  follow: true, // show the newest run, switching when a new one starts
  runs: [], // GET /api/metrics/runs, newest first
  learner: new LearnerTracker(), // the live learner (newest run), for the status line
  at: { env_steps: null, weights_version: null }, // the learner's latest, for state rows
  evals: null,
  evalControls: null,
  robot: null,
  evalDone: null,
  evalReload: null,
};
// Read-only handle for the browser console and the browser tests.
window.tandem = page;

async function main() {
  await startPage();
  page.qstrip = new QStrip($("qstrip"));
  page.processes = new ProcessesPanel($("processes"));
  page.evalControls = new EvalControls($("eval-controls"), { robot: () => page.robot });
  page.evals = new EvalChart($("eval-chart"), $("eval-rows"));
  $("x-axis").addEventListener("change", (ev) => setAxis(ev.target.value));
  $("run-select").addEventListener("change", (ev) => selectRun(ev.target.value));
  await loadRuns();
  await loadHistory(page.runs[0]?.id, { live: true });
  await loadRecent();
  await loadEvals();
  new Telemetry({
    metrics: onMetrics,
    rollout: onRollout,
    episode_summary: onEpisode,
    episode_label: onLabel,
    state: onState,
    onopen: () => setLink(true),
    onclose: () => setLink(false),
  });
  setInterval(flush, FLUSH_MS);
  setInterval(showLearner, STATUS_MS);
  showLearner();
  window.addEventListener("resize", () => {
    for (const chart of page.charts.values()) chart.resize();
    page.qstrip.resize();
    page.evals.resize();
  });
}

/** Plot every metric chart against wall time, env steps or weights version. */
function setAxis(axis) {
  if (!(axis in X_AXES)) return;
  page.axis = axis;
  $("x-axis").value = axis;
  for (const chart of page.charts.values()) chart.setAxis(axis);
}

async function loadEvals() {
  await page.evals.load();
  const last = page.evals.batches.filter((b) => b.episodes > 0).at(-1);
  $("fig-eval").textContent = last ? percent(last.success_rate) : "—";
  $("fig-eval").title = last ? `${last.successes}/${last.episodes} · ${last.batch}` : "";
}

/** Reload the evaluation batches a moment after one of their episodes ended. */
function reloadEvalsSoon() {
  clearTimeout(page.evalReload);
  page.evalReload = setTimeout(loadEvals, EVAL_RELOAD_MS);
}

function percent(x) {
  return x === null || x === undefined || !Number.isFinite(x) ? "—" : `${Math.round(x * 100)} %`;
}

/** Fill the run selector from GET /api/metrics/runs (newest first). */
async function loadRuns() {
  try {
    page.runs = await api("/api/metrics/runs");
  } catch (err) {
    toast(`Could not list the learner runs: ${err.message}`, { error: true });
    return;
  }
  const select = $("run-select");
  const options = page.runs.map((run, i) =>
    h("option", { value: run.id }, runLabel(run, i === 0)),
  );
  select.replaceChildren(h("option", { value: "" }, "newest (live)"), ...options);
  select.value = page.follow ? "" : (page.runId ?? "");
}

function runLabel(run, newest) {
  const started = new Date(run.started_at).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
  const method = run.method ? ` · ${run.method}` : "";
  return `${run.id}${method} · ${started}${newest ? " (newest)" : ""}`;
}

/** Show one run's stored metrics ("" = the newest, following new runs as they start). */
async function selectRun(value) {
  page.follow = !value;
  const run = value || page.runs[0]?.id || null;
  clearCharts();
  page.runId = run;
  if (run) await loadHistory(run, { live: run === page.runs[0]?.id });
}

/** A run's stored metrics, so a page opened mid-training shows the history. */
async function loadHistory(run, { live = false } = {}) {
  if (!run) return;
  try {
    const history = await api(
      `/api/metrics/${encodeURIComponent(run)}?max_points=${HISTORY_POINTS}`,
    );
    const rows = new Map(); // metrics of one message share its time stamp
    for (const [name, points] of Object.entries(history.series)) {
      for (const [t, value] of points) {
        if (!rows.has(t)) rows.set(t, {});
        rows.get(t)[name] = value;
      }
    }
    const times = [...rows.keys()].sort((a, b) => a - b);
    page.runId = run;
    for (const t of times) addRow({ run_id: run, t_wall: t, scalars: rows.get(t) }, { live });
    page.historyRows = times.length;
    $("run").textContent = run;
  } catch (err) {
    toast(`Could not load the metrics history: ${err.message}`, { error: true });
  }
}

/** The status line: what the live learner does, or that it is down. */
function showLearner() {
  const status = page.learner.status();
  const el = $("learner");
  el.textContent = status.text;
  el.dataset.state = status.state;
  page.learnerState = status;
}

/** Robot state: mode badge, evaluation progress, the bridge's weights version and lag. */
function onState(msg) {
  showMode($("mode"), msg.mode);
  page.robot = msg.robot_id ?? page.robot;
  page.evalControls.update(msg);
  const done = msg.eval ? `${msg.eval.batch}:${msg.eval.done}` : null;
  if (done !== page.evalDone) {
    if (page.evalDone !== null) reloadEvalsSoon();
    page.evalDone = done;
  }
  if (msg.weights_version === null || msg.weights_version === undefined) return;
  const values = { [`${msg.robot_id}/weights_version`]: msg.weights_version };
  if (msg.weights_lag !== null && msg.weights_lag !== undefined) {
    values[`${msg.robot_id}/weights_lag`] = msg.weights_lag;
  }
  const at = { time: msg.t_wall, env_steps: page.at.env_steps, weights_version: msg.weights_version };
  chartFor("weights").add(at, values);
}

/** One LearnerMetrics message, or a batch of them under `rows`. */
function onMetrics(msg) {
  const rows = Array.isArray(msg.rows) ? msg.rows : [msg];
  for (const row of rows) {
    const metrics = row?.scalars ?? row?.metrics;
    if (typeof metrics !== "object" || metrics === null) continue;
    page.learner.update(row.run_id, metrics, Date.now() / 1000);
    if (row.run_id && !page.runs.some((r) => r.id === row.run_id)) {
      page.runs.unshift({ id: row.run_id, method: null, started_at: new Date().toISOString() });
      loadRuns(); // a new run: list it (the server stores it with this batch)
    }
    if (row.run_id && page.runId && row.run_id !== page.runId) {
      if (!page.follow) continue; // another run than the chosen one: not drawn
      newRun(row.run_id);
    }
    addRow(row);
  }
  showLearner();
}

/** Draw one metrics row of the shown run; `live`: it also feeds the status line. */
function addRow(row, { live = false } = {}) {
  const metrics = row?.scalars ?? row?.metrics;
  if (typeof metrics !== "object" || metrics === null) return;
  page.runId = row.run_id ?? page.runId;
  page.metricsReceived += 1; // rows of the current run
  const at = rowPosition(row, metrics);
  showFigures(metrics);
  if (live) page.learner.update(row.run_id, metrics, Math.min(at.time, Date.now() / 1000));
  const byGroup = new Map();
  for (const [name, value] of Object.entries(metrics)) {
    const group = groupOf(name);
    if (!byGroup.has(group.id)) byGroup.set(group.id, {});
    byGroup.get(group.id)[name] = value;
  }
  for (const [id, values] of byGroup) chartFor(id).add(at, values);
  $("run").textContent = row.run_id ?? "—";
  $("update-step").textContent = String(row.update_step ?? "—");
  $("env-steps").textContent = String(row.env_steps ?? "—");
  $("no-metrics").hidden = true;
}

/** A learner run started (its env steps and versions count from zero): draw it alone. */
function newRun(runId) {
  clearCharts();
  toast(`New learner run ${runId}: the charts start over`);
}

function clearCharts() {
  for (const chart of page.charts.values()) chart.plot?.destroy();
  page.charts.clear();
  $("charts").replaceChildren();
  page.at = { env_steps: null, weights_version: null };
  page.metricsReceived = 0;
  for (const id of Object.values(FIGURES)) $(id).textContent = "—";
  $("no-metrics").hidden = false;
}

/** Where a metrics row sits: wall time, the learner's env steps and weights version. */
function rowPosition(row, metrics) {
  const env = finite(row.env_steps) ?? finite(metrics["learner/env_steps"]) ?? page.at.env_steps;
  const version = finite(metrics["weights/version"]) ?? page.at.weights_version;
  page.at = { env_steps: env, weights_version: version };
  const time = Number.isFinite(row.t_wall) ? row.t_wall : Date.now() / 1000;
  return { time, env_steps: env, weights_version: version };
}

function finite(x) {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

/** The three figures: autonomous success, success with help, intervention rate. */
function showFigures(metrics) {
  for (const [name, id] of Object.entries(FIGURES)) {
    if (name in metrics) $(id).textContent = percent(metrics[name]);
  }
}

/** The chart of a group, created on first use in the fixed group order. */
function chartFor(id) {
  let chart = page.charts.get(id);
  if (chart) return chart;
  const group = GROUPS.find((g) => g.id === id);
  const el = h("div", { class: "chart", "data-group": id });
  const order = GROUPS.map((g) => g.id);
  const after = [...$("charts").children].find(
    (c) => order.indexOf(c.dataset.group) > order.indexOf(id),
  );
  $("charts").insertBefore(el, after ?? null);
  chart = new MetricChart(el, group, page.axis);
  page.charts.set(id, chart);
  return chart;
}

/** The Q of the executed proposal (IBRL: the imitation or the RL actor's), if known. */
export function executedQ(s) {
  if (Number.isFinite(s.q)) return s.q;
  if (s.proposal === "il" && Number.isFinite(s.q_il)) return s.q_il;
  if (s.proposal === "rl" && Number.isFinite(s.q_rl)) return s.q_rl;
  const known = [s.q_il, s.q_rl].filter(Number.isFinite);
  return known.length ? Math.max(...known) : null;
}

/** One live step of the current episode: {episode_id, step, source, q_il, q_rl, proposal}. */
function onRollout(msg) {
  page.qstrip.add(msg.episode_id, msg.step, executedQ(msg), msg.source === "human");
}

/** The newest stored episodes, so a page opened after they ended still lists them. */
async function loadRecent() {
  try {
    const listed = await api(`/api/episodes?limit=${RECENT_ROWS}`);
    for (const e of [...listed.items].reverse()) {
      onEpisode({
        episode_id: e.id,
        episode_kind: e.kind,
        outcome: e.outcome,
        discarded: e.discarded,
        complete: e.complete,
        success: e.success,
        result: e.result,
        reason: e.end_reason,
        length: e.length,
        return: e.episode_return,
        intervention_rate: e.length ? e.intervention_steps / e.length : null,
      });
    }
  } catch (err) {
    toast(`Could not load the recent episodes: ${err.message}`, { error: true });
  }
}

/** A label given after the episode ended (Episodes page, operate page): update its row. */
function onLabel(msg) {
  const cell = $("recent").querySelector(
    `tr[data-episode="${CSS.escape(String(msg.episode_id))}"] td[data-role="outcome"]`,
  );
  if (cell) cell.textContent = outcomeText({ outcome: msg.outcome });
}

function onEpisode(msg) {
  if (msg.episode_kind === "evaluation") reloadEvalsSoon();
  const rate = msg.intervention_rate;
  const id = String(msg.episode_id ?? "");
  const link = h("a", { href: replayHref(id), title: "Replay on the Episodes page" }, id || "—");
  const row = h(
    "tr",
    {},
    h("td", { class: "mono small" }, link),
    h("td", {}, String(msg.episode_kind ?? "—")),
    h("td", { "data-role": "outcome" }, outcomeText(msg)),
    h("td", {}, endText(msg.reason)),
    h("td", { class: "result", "data-result": msg.result ?? "" }, resultText(msg.result)),
    h("td", {}, String(msg.length ?? "—")),
    h("td", {}, fmt(msg.return, 2)),
    h("td", {}, Number.isFinite(rate) ? `${Math.round(rate * 100)} %` : "—"),
  );
  const body = $("recent");
  body.querySelector(`tr[data-episode="${CSS.escape(String(msg.episode_id))}"]`)?.remove();
  row.dataset.episode = String(msg.episode_id ?? "");
  body.prepend(row);
  while (body.children.length > RECENT_ROWS) body.lastChild.remove();
}

function flush() {
  for (const chart of page.charts.values()) chart.flush();
  page.qstrip.flush();
}

page.summary = () => ({
  metricsReceived: page.metricsReceived,
  axis: page.axis,
  runId: page.runId,
  follow: page.follow,
  learner: page.learner.status(),
  charts: [...page.charts.values()].map((c) => c.summary()),
  qstrip: page.qstrip.summary(),
  evals: page.evals.summary(),
});

main();
