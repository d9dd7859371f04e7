// Training page: live learner metrics (grouped uPlot charts), the rollout Q strip, episodes.

import { GROUPS, MetricChart, QStrip, groupOf } from "./charts.js";
import { login } from "./net.js";
import { Telemetry } from "./telemetry.js";
import { $, fmt, h, markNav, showMode, toast } from "./ui.js";

const FLUSH_MS = 100; // batched setData at <= 10 Hz
const RECENT_ROWS = 20;

const page = { charts: new Map(), qstrip: null, metricsReceived: 0 };
// Read-only handle for the browser console and the browser tests.
window.tandem = page;

async function main() {
  markNav();
  try {
    await login();
  } catch (err) {
    toast(`Login failed: ${err.message}`, { error: true });
  }
  page.qstrip = new QStrip($("qstrip"));
  new Telemetry({
    metrics: onMetrics,
    rollout: onRollout,
    episode: onEpisode,
    state: (msg) => showMode($("mode"), msg.mode),
    onopen: () => setLink(true),
    onclose: () => setLink(false),
  });
  setInterval(flush, FLUSH_MS);
  window.addEventListener("resize", () => {
    for (const chart of page.charts.values()) chart.resize();
    page.qstrip.resize();
  });
}

function setLink(up) {
  const el = $("link");
  el.textContent = up ? "connected" : "disconnected";
  el.className = `badge ${up ? "ok" : "bad"}`;
}

/** One LearnerMetrics message, or a batch of them under `rows`. */
function onMetrics(msg) {
  const rows = Array.isArray(msg.rows) ? msg.rows : [msg];
  for (const row of rows) addRow(row);
}

function addRow(row) {
  if (!row || typeof row.metrics !== "object" || row.metrics === null) return;
  page.metricsReceived += 1;
  const x = Number.isFinite(row.t_wall) ? row.t_wall : Date.now() / 1000;
  const byGroup = new Map();
  for (const [name, value] of Object.entries(row.metrics)) {
    const group = groupOf(name);
    if (!byGroup.has(group.id)) byGroup.set(group.id, {});
    byGroup.get(group.id)[name] = value;
  }
  for (const [id, values] of byGroup) chartFor(id).add(x, values);
  $("run").textContent = row.run_id ?? "—";
  $("update-step").textContent = String(row.update_step ?? "—");
  $("env-steps").textContent = String(row.env_steps ?? "—");
  $("no-metrics").hidden = true;
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
  chart = new MetricChart(el, group);
  page.charts.set(id, chart);
  return chart;
}

/** One live rollout sample: {episode_id, step, q, source}. */
function onRollout(msg) {
  const samples = Array.isArray(msg.samples) ? msg.samples : [msg];
  for (const s of samples) {
    page.qstrip.add(s.episode_id ?? msg.episode_id, s.step, s.q, s.source === "human" || s.intervention === true);
  }
}

function onEpisode(msg) {
  const rate = msg.num_steps ? (msg.intervention_steps ?? 0) / msg.num_steps : null;
  const row = h(
    "tr",
    {},
    h("td", { class: "mono small" }, String(msg.episode_id ?? "—")),
    h("td", {}, String(msg.kind ?? msg.episode_kind ?? "—")),
    h("td", {}, String(msg.outcome ?? "—")),
    h("td", {}, String(msg.num_steps ?? "—")),
    h("td", {}, fmt(msg.return ?? msg.episode_return, 2)),
    h("td", {}, rate === null ? "—" : `${Math.round(rate * 100)} %`),
  );
  const body = $("recent");
  body.prepend(row);
  while (body.children.length > RECENT_ROWS) body.lastChild.remove();
}

function flush() {
  for (const chart of page.charts.values()) chart.flush();
  page.qstrip.flush();
}

page.summary = () => ({
  metricsReceived: page.metricsReceived,
  charts: [...page.charts.values()].map((c) => c.summary()),
  qstrip: page.qstrip.summary(),
});

main();
