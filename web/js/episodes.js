// Episodes page: filterable list, replay (frames + action/intervention timeline), label,
// notes, discard/restore, export and delete.

import uPlot from "/node_modules/uplot/dist/uPlot.esm.js";
import { startPage } from "./common.js";
import { api } from "./net.js";
import { endText, outcomeText } from "./outcomes.js";
import { $, fmt, h, resultText, toast } from "./ui.js";

const ACTION_NAMES = ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"];
const COLORS = ["#4f9dff", "#2fbf71", "#f0b429", "#b57cff", "#3fd0d4", "#ff8c42", "#e8ecf1"];
const PLAY_FPS = 10;

const page = { items: [], episode: null, arrays: null, step: 0, timeline: null, player: null };
// Read-only handle for the browser console and the browser tests.
window.tandem = page;

async function main() {
  const user = await startPage();
  wire();
  if (user) await refresh();
  const wanted = new URLSearchParams(location.search).get("episode");
  if (wanted) await select(wanted);
}

function wire() {
  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    refresh();
  });
  for (const id of ["f-kind", "f-outcome", "f-result", "f-complete", "f-discarded"]) {
    $(id).addEventListener("change", refresh);
  }
  $("export-listed").addEventListener("click", () => exportEpisodes(page.items.map(idOf)));
  $("scrubber").addEventListener("input", (ev) => show(Number(ev.target.value)));
  $("play").addEventListener("click", togglePlay);
  $("label-success").addEventListener("click", () => label("success"));
  $("label-failure").addEventListener("click", () => label("failure"));
  $("discard").addEventListener("click", () => change("discard"));
  $("restore").addEventListener("click", () => change("restore"));
  $("export").addEventListener("click", () => exportEpisodes([idOf(page.episode)]));
  $("delete").addEventListener("click", remove);
  $("save-notes").addEventListener("click", saveNotes);
  window.addEventListener("resize", () => page.timeline?.setSize(timelineSize()));
}

const idOf = (ep) => ep.id;

function filterQuery() {
  const q = new URLSearchParams({ limit: "200" });
  const robot = $("f-robot").value.trim();
  if (robot) q.set("robot", robot);
  for (const [id, key] of [
    ["f-kind", "kind"],
    ["f-outcome", "outcome"],
    ["f-result", "result"],
    ["f-complete", "complete"],
  ]) {
    if ($(id).value) q.set(key, $(id).value);
  }
  q.set("discarded", $("f-discarded").checked ? "true" : "false");
  return q;
}

async function refresh() {
  try {
    const res = await api(`/api/episodes?${filterQuery()}`);
    page.items = res.items;
    $("count").textContent =
      `${res.total} episode(s)` +
      (res.total > res.items.length ? `, newest ${res.items.length} shown` : "");
    renderRows();
  } catch (err) {
    toast(`Could not list episodes: ${err.message}`, { error: true });
  }
}

function startedText(ep) {
  const d = new Date(ep.started_at);
  return Number.isNaN(d.getTime()) ? String(ep.started_at ?? "—") : d.toLocaleString();
}

function renderRows() {
  const body = $("rows");
  body.replaceChildren(
    ...page.items.map((ep) =>
      h(
        "tr",
        {
          "data-episode": idOf(ep),
          class: idOf(ep) === idOf(page.episode ?? {}) ? "selected" : "",
          onclick: () => select(idOf(ep)),
        },
        h("td", { class: "small" }, startedText(ep)),
        h("td", { class: "mono small" }, idOf(ep)),
        h("td", {}, ep.robot_id ?? "—"),
        h("td", {}, ep.kind ?? "—"),
        h("td", {}, String(ep.length)),
        h("td", {}, outcomeText(ep)),
        h("td", { class: "result", "data-result": ep.result ?? "" }, resultText(ep.result)),
        h("td", {}, ep.kind === "demo" ? "—" : `${ep.intervention_steps} steps`),
        h("td", { class: "small" }, weightsText(ep)),
      ),
    ),
  );
}

function weightsText(ep) {
  if (ep.weights_version === null || ep.weights_version === undefined) return "—";
  const steps = ep.env_steps === null || ep.env_steps === undefined ? "" : ` @ ${ep.env_steps}`;
  const batch = ep.eval_batch ? ` (eval #${ep.eval_index ?? "?"})` : "";
  return `v${ep.weights_version}${steps}${batch}`;
}

async function select(id) {
  try {
    const [episode, arrays] = await Promise.all([
      api(`/api/episodes/${encodeURIComponent(id)}`),
      api(`/api/episodes/${encodeURIComponent(id)}/arrays`),
    ]);
    stopPlay();
    Object.assign(page, { episode, arrays, step: 0 });
    renderDetail();
    renderRows();
  } catch (err) {
    toast(`Could not open episode ${id}: ${err.message}`, { error: true });
  }
}

function renderDetail() {
  const { episode: ep, arrays } = page;
  $("detail").hidden = false;
  $("d-id").textContent = idOf(ep);
  $("d-robot").textContent = `${ep.robot_id ?? "—"}${ep.task ? ` (${ep.task})` : ""}`;
  $("d-kind").textContent = ep.kind ?? "—";
  $("d-outcome").textContent = outcomeText(ep);
  $("d-result").textContent = resultText(ep.result);
  $("d-weights").textContent = weightsText(ep);
  $("d-status").textContent = ep.recording
    ? "recording"
    : ep.complete
      ? `complete (${endText(ep.end_reason)}), return ${fmt(ep.episode_return, 2)}`
      : "incomplete (recording stopped)";
  $("d-operator").textContent = ep.labeled_by
    ? `${ep.operator ?? "—"}, labelled by ${ep.labeled_by}`
    : (ep.operator ?? "—");
  $("notes").value = ep.notes ?? "";
  $("discard").hidden = Boolean(ep.discarded);
  $("restore").hidden = !ep.discarded;
  $("d-length").textContent = String(Math.max(0, arrays.length - 1));
  $("scrubber").max = String(Math.max(0, arrays.length - 1));
  $("d-frames").replaceChildren(
    ...arrays.cameras.map((cam) =>
      h(
        "div",
        { class: "cam" },
        h("img", { "data-cam": cam, alt: `${cam} camera` }),
        h("span", { class: "label" }, cam),
      ),
    ),
  );
  buildTimeline();
  show(0);
}

/** Show step `i`: frames, scrubber, source badge, timeline cursor. */
function show(i) {
  const { arrays } = page;
  if (!arrays || arrays.length === 0) return;
  page.step = Math.max(0, Math.min(arrays.length - 1, i));
  $("scrubber").value = String(page.step);
  $("d-step").textContent = String(page.step);
  const source = arrays.action_source[page.step];
  const badge = $("d-source");
  badge.textContent = arrays.intervention[page.step] ? "intervention" : source;
  badge.dataset.mode = arrays.intervention[page.step]
    ? "intervention"
    : source === "policy"
      ? "rollout"
      : "teleop";
  const base = `/api/episodes/${encodeURIComponent(arrays.episode_id)}/frames`;
  for (const img of document.querySelectorAll("#d-frames img")) {
    img.dataset.step = String(page.step);
    img.src = `${base}/${encodeURIComponent(img.dataset.cam)}/${page.step}`;
  }
  page.timeline?.redraw(false);
}

function timelineSize() {
  return { width: Math.max(260, $("timeline").clientWidth - 8), height: 200 };
}

/** Runs of consecutive true flags as [first, last] index pairs. */
export function spans(flags) {
  const out = [];
  flags.forEach((on, i) => {
    if (!on) return;
    if (i > 0 && flags[i - 1]) out[out.length - 1][1] = i;
    else out.push([i, i]);
  });
  return out;
}

function buildTimeline() {
  const { arrays } = page;
  page.timeline?.destroy();
  const xs = arrays.action.map((_, i) => i);
  const data = [xs, ...ACTION_NAMES.map((_, d) => arrays.action.map((a) => a[d]))];
  const shaded = spans(arrays.intervention);
  const opts = {
    title: "Applied action (shaded: human intervention)",
    ...timelineSize(),
    scales: { x: { time: false }, y: { range: [-1.05, 1.05] } },
    series: [
      { label: "step" },
      ...ACTION_NAMES.map((label, i) => ({ label, stroke: COLORS[i], width: 1.2 })),
    ],
    axes: [{ stroke: "#9aa4b2" }, { stroke: "#9aa4b2" }],
    hooks: {
      drawClear: [(u) => shade(u, shaded)],
      draw: [(u) => cursorLine(u)],
      ready: [
        (u) =>
          u.over.addEventListener("click", () => show(Math.round(u.posToVal(u.cursor.left, "x")))),
      ],
    },
  };
  page.timeline = new uPlot(opts, data, $("timeline"));
}

function shade(u, runs) {
  const { ctx, bbox } = u;
  ctx.save();
  ctx.fillStyle = "rgba(240, 180, 41, 0.22)";
  for (const [a, b] of runs) {
    const x0 = u.valToPos(a - 0.5, "x", true);
    const x1 = u.valToPos(b + 0.5, "x", true);
    ctx.fillRect(x0, bbox.top, Math.max(2, x1 - x0), bbox.height);
  }
  ctx.restore();
}

function cursorLine(u) {
  const { ctx, bbox } = u;
  const x = u.valToPos(page.step, "x", true);
  ctx.save();
  ctx.strokeStyle = "#e5484d";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(x, bbox.top);
  ctx.lineTo(x, bbox.top + bbox.height);
  ctx.stroke();
  ctx.restore();
}

function togglePlay() {
  if (page.player) return stopPlay();
  if (page.step >= page.arrays.length - 1) show(0);
  $("play").textContent = "Pause";
  page.player = setInterval(() => {
    if (page.step >= page.arrays.length - 1) return stopPlay();
    show(page.step + 1);
  }, 1000 / PLAY_FPS);
}

function stopPlay() {
  clearInterval(page.player);
  page.player = null;
  $("play").textContent = "Play";
}

async function applied(promise, what) {
  try {
    page.episode = await promise;
    renderDetail();
    await refresh();
    toast(what);
  } catch (err) {
    toast(`${what} failed: ${err.message}`, { error: true });
  }
}

function label(outcome) {
  const id = encodeURIComponent(idOf(page.episode));
  return applied(
    api(`/api/episodes/${id}/label`, { method: "POST", body: { outcome } }),
    `Labelled ${outcome}`,
  );
}

function change(action) {
  const id = encodeURIComponent(idOf(page.episode));
  return applied(
    api(`/api/episodes/${id}/${action}`, { method: "POST" }),
    action === "discard" ? "Discarded" : "Restored",
  );
}

function saveNotes() {
  const id = encodeURIComponent(idOf(page.episode));
  return applied(
    api(`/api/episodes/${id}/notes`, { method: "POST", body: { notes: $("notes").value } }),
    "Notes saved",
  );
}

async function remove() {
  const id = idOf(page.episode);
  if (!confirm(`Delete episode ${id} and its files for good?`)) return;
  try {
    await api(`/api/episodes/${encodeURIComponent(id)}?confirm=${encodeURIComponent(id)}`, {
      method: "DELETE",
    });
    stopPlay();
    Object.assign(page, { episode: null, arrays: null });
    $("detail").hidden = true;
    await refresh();
    toast(`Deleted ${id}`);
  } catch (err) {
    toast(`Delete failed: ${err.message}`, { error: true });
  }
}

async function exportEpisodes(ids) {
  if (!ids.length) return toast("Nothing to export", { error: true });
  try {
    const res = await api("/api/export", { method: "POST", body: { episode_ids: ids }, raw: true });
    const blob = await res.blob();
    const name =
      /filename="?([^";]+)"?/.exec(res.headers.get("content-disposition") ?? "")?.[1] ??
      "tandem_export.hdf5";
    const a = h("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    page.lastExport = { name, bytes: blob.size };
    toast(`Exported ${ids.length} episode(s): ${name} (${fmt(blob.size / 1024, 0)} KiB)`);
  } catch (err) {
    toast(`Export failed: ${err.message}`, { error: true });
  }
}

main();
