// Evaluation batches: start/stop controls with the bridge's progress, and the curve of
// autonomous evaluation success against the learner's env steps (from /api/evals).

import uPlot from "/node_modules/uplot/dist/uPlot.esm.js";
import { api } from "./net.js";
import { fmt, h, toast } from "./ui.js";

export const MAX_EVAL_EPISODES = 1000;
const DEFAULT_EPISODES = 10;

/** N input, Start / Stop buttons and the running batch's progress (from the robot status). */
export class EvalControls {
  constructor(container, { robot = () => null } = {}) {
    this.robot = robot;
    this.input = h("input", {
      id: "eval-episodes",
      type: "number",
      min: "1",
      max: String(MAX_EVAL_EPISODES),
      value: String(DEFAULT_EPISODES),
      size: "4",
      title: "Evaluation episodes in the batch",
      "aria-label": "Evaluation episodes",
    });
    this.start = h("button", { id: "start-eval", type: "button" }, "Start evaluation");
    this.stop = h("button", { id: "stop-eval", type: "button", hidden: "" }, "Stop evaluation");
    this.progress = h("span", { id: "eval-progress", class: "small muted" }, "");
    this.start.addEventListener("click", () => this.startBatch());
    this.stop.addEventListener("click", () => this.stopBatch());
    container.append(
      h("div", { class: "row" }, this.input, h("span", {}, "episodes"), this.start, this.stop),
      h("div", { class: "row small" }, this.progress),
    );
  }

  /** The number of episodes typed in, or null (with a message) when it is not valid. */
  episodes() {
    const n = Number(this.input.value);
    if (!Number.isInteger(n) || n < 1 || n > MAX_EVAL_EPISODES) {
      toast(`Evaluation: give a whole number of episodes from 1 to ${MAX_EVAL_EPISODES}`, {
        error: true,
      });
      return null;
    }
    return n;
  }

  async startBatch() {
    const episodes = this.episodes();
    if (episodes === null) return;
    const body = { episodes, reason: "started from the dashboard" };
    const robot = this.robot();
    if (robot) body.robot_id = robot;
    try {
      const res = await api("/api/evals", { method: "POST", body });
      toast(`Evaluation started: ${res.reason}`);
    } catch (err) {
      toast(`Evaluation not started: ${err.detail ?? err.message}`, { error: true });
    }
  }

  async stopBatch() {
    const robot = this.robot();
    try {
      await api("/api/evals/stop", { method: "POST", body: robot ? { robot_id: robot } : {} });
    } catch (err) {
      toast(`Evaluation not stopped: ${err.detail ?? err.message}`, { error: true });
    }
  }

  /** A robot status (telemetry ``state``): show its current or last batch. */
  update(status) {
    const batch = status?.eval;
    const running = Boolean(batch?.running);
    this.stop.hidden = !running;
    this.start.disabled = running;
    this.progress.textContent = batch ? progressText(batch, status.mode) : "";
    this.progress.dataset.running = running ? "true" : "false";
  }
}

export function progressText(batch, mode) {
  const head = `Evaluation ${batch.done}/${batch.total}: ${batch.successes} autonomous`;
  const tail = batch.done ? ` (${Math.round((100 * batch.successes) / batch.done)} %)` : "";
  if (batch.running && mode === "await_reset" && !batch.auto_reset) {
    return `${head}${tail} · reset the scene, then press Reset done`;
  }
  if (batch.running) return `${head}${tail} · running`;
  return `${head}${tail} · ${batch.stopped_reason ? `stopped (${batch.stopped_reason})` : "done"}`;
}

/** Autonomous evaluation success (y, 0..1) of each stored batch against env steps (x). */
export class EvalChart {
  constructor(container, table) {
    this.el = container;
    this.table = table;
    this.batches = [];
    this.plot = new uPlot(this.options(), [[], []], container);
  }

  async load() {
    try {
      this.set(await api("/api/evals"));
    } catch (err) {
      toast(`Could not load the evaluation batches: ${err.message}`, { error: true });
    }
  }

  set(batches) {
    this.batches = batches;
    const plotted = batches
      .filter((b) => Number.isFinite(b.env_steps) && Number.isFinite(b.success_rate))
      .sort((a, b) => a.env_steps - b.env_steps);
    this.plot.setData([plotted.map((b) => b.env_steps), plotted.map((b) => b.success_rate)]);
    this.renderTable();
  }

  renderTable() {
    const rows = [...this.batches].reverse().map((b) =>
      h(
        "tr",
        { "data-batch": b.batch },
        h("td", { class: "mono small" }, b.batch),
        h("td", {}, b.weights_version === null ? "—" : `v${b.weights_version}`),
        h("td", {}, b.env_steps === null ? "—" : String(b.env_steps)),
        h("td", {}, `${b.successes}/${b.episodes}`),
        h("td", {}, b.success_rate === null ? "—" : fmt(b.success_rate, 2)),
      ),
    );
    this.table.replaceChildren(...rows);
  }

  options() {
    return {
      title: "Evaluation: autonomous success vs env steps",
      width: Math.max(240, this.el.clientWidth - 8),
      height: 220,
      scales: { x: { time: false }, y: { range: [0, 1] } },
      series: [
        { label: "env steps" },
        {
          label: "autonomous success",
          stroke: "#2fbf71",
          width: 2,
          points: { show: true, size: 7 },
        },
      ],
      axes: [{ stroke: "#9aa4b2" }, { stroke: "#9aa4b2", size: 50 }],
    };
  }

  resize() {
    this.plot.setSize({ width: Math.max(240, this.el.clientWidth - 8), height: 220 });
  }

  summary() {
    return {
      batches: this.batches.length,
      points: this.plot.data[0].length,
      x: [...this.plot.data[0]],
      y: [...this.plot.data[1]],
    };
  }
}
