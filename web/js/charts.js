// Live charts on uPlot: metric groups fed by learner metrics, and the rollout Q strip.
// Data live in bounded arrays (ring buffers); the page flushes them with setData at <= 10 Hz.

import uPlot from "/node_modules/uplot/dist/uPlot.esm.js";

export const MAX_POINTS = 3000;
const PALETTE = [
  "#4f9dff",
  "#2fbf71",
  "#f0b429",
  "#e5484d",
  "#b57cff",
  "#3fd0d4",
  "#ff8c42",
  "#c0c6cf",
];

/**
 * Chart groups, first match wins; metric names are documented in docs/metrics.md. One unit
 * per chart (its y-axis label): rates in [0, 1] never share an axis with counts.
 */
export const GROUPS = [
  { id: "success", title: "Success rate", unit: "fraction", match: /success/i },
  { id: "return", title: "Episode return", unit: "return", match: /return/i },
  {
    id: "intervention",
    title: "Intervention rate",
    unit: "fraction",
    match: /interven\w*_(rate|frac)|episodes_with_intervention/i,
  },
  {
    id: "ibrl",
    title: "IL proposal selected (IBRL)",
    unit: "fraction",
    match: /bc_selected|selected_frac|^ibrl\//i,
  },
  {
    id: "episodes",
    title: "Episodes & interventions recorded",
    unit: "count",
    match: /^data\/\w*(episodes|segments)$|^hil\/refits$|^hil\/refit_failed$/i,
  },
  { id: "steps", title: "Human & demo steps", unit: "steps", match: /^(data|hil)\/\w*_steps$/i },
  { id: "q", title: "Q values", unit: "Q", match: /(^|[/_])q($|[/_])|q_mean|target_mean/i },
  { id: "loss", title: "Losses", unit: "loss", match: /loss|td_error|^td\//i },
  {
    id: "rate",
    title: "Updates per second",
    unit: "per s",
    match: /per_s(ec)?$|\/s$|fps|throughput/i,
  },
  { id: "buffer", title: "Buffer sizes", unit: "transitions", match: /buffer|replay_size/i },
  { id: "weights", title: "Weights version & lag", unit: "version", match: /weights|version|lag/i },
  { id: "seconds", title: "Durations", unit: "s", match: /_s$|seconds$/i },
  { id: "other", title: "Other metrics", unit: "", match: /.*/ },
];

export function groupOf(name) {
  return GROUPS.find((g) => g.match.test(name)) ?? GROUPS[GROUPS.length - 1];
}

/** Trim parallel arrays to the newest MAX_POINTS (in blocks, so trimming is rare). */
function trim(columns) {
  const extra = columns[0].length - MAX_POINTS;
  if (extra > MAX_POINTS / 4) for (const col of columns) col.splice(0, extra);
}

function sizeOf(el, height) {
  return { width: Math.max(240, el.clientWidth - 8), height };
}

/** What a metric chart's x axis can be: the learner's wall time, env steps or weights version. */
export const X_AXES = {
  time: { label: "time", time: true },
  env_steps: { label: "env steps", time: false },
  weights_version: { label: "weights version", time: false },
};

// Tick steps of a time axis, s: never below a second (an empty or one-point chart once
// showed sub-second ticks), and far enough apart that labels do not overlap.
const TIME_INCRS = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  2 * 86400, 7 * 86400, 30 * 86400,
];
// Tick steps of a count axis (env steps, versions, rollout steps): whole numbers.
const COUNT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5]
  .concat([2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8]);
const pad2 = (n) => String(n).padStart(2, "0");

/** Tick labels of a time axis: "14:05" (or "14:05:30" under a minute apart), the date
 * only where the day changes ("3 May 14:05"). */
export function timeLabels(splits, incr) {
  let lastDay = null;
  return splits.map((t) => {
    const d = new Date(t * 1000);
    const day = d.toDateString();
    let text = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    if (incr < 60) text += `:${pad2(d.getSeconds())}`;
    if (incr >= 86400) text = "";
    if (day !== lastDay && (lastDay !== null || incr >= 3600)) {
      const date = d.toLocaleDateString(undefined, { day: "numeric", month: "short" });
      text = text ? `${date} ${text}` : date;
    }
    lastDay = day;
    return text;
  });
}

/** An x range that is never empty: one point gets a minute (or ±1 step) around it. */
function xRange(time) {
  return (u, min, max) => {
    if (min === null || max === null) {
      const now = Date.now() / 1000;
      return time ? [now - 60, now] : [0, 10];
    }
    if (max - min < (time ? 60 : 1)) return time ? [min - 30, max + 30] : [min - 1, max + 1];
    return [min, max];
  };
}

/** uPlot x scale and axis for a time axis or a count axis (env steps, versions, steps). */
export function xAxisOptions(time, label) {
  const axis = { stroke: "#9aa4b2", label, labelSize: 18, space: time ? 90 : 60 };
  if (time) {
    axis.incrs = TIME_INCRS;
    axis.values = (u, splits, ax, space, incr) => timeLabels(splits, incr);
  } else {
    axis.incrs = COUNT_INCRS;
  }
  return { scale: { time, range: xRange(time) }, axis };
}

/**
 * One uPlot chart whose series appear as metric names arrive. Each row keeps its wall time
 * (s), the learner's env steps and the weights version, so the x axis can be any of them.
 */
export class MetricChart {
  constructor(container, group, axis = "time") {
    this.group = group;
    this.names = [];
    this.rows = [];
    this.axis = axis;
    this.dirty = false;
    this.plot = null;
    this.el = container;
  }

  /** Append one row: ``at`` = {time, env_steps, weights_version}, ``values`` = {name: value}. */
  add(at, values) {
    const last = this.rows[this.rows.length - 1];
    if (last && at.time < last.at.time) return; // rows arrive in time order
    for (const name of Object.keys(values)) if (!this.names.includes(name)) this.addSeries(name);
    this.rows.push({ at, values });
    if (this.rows.length > MAX_POINTS * 1.25) this.rows.splice(0, this.rows.length - MAX_POINTS);
    this.dirty = true;
  }

  addSeries(name) {
    this.names.push(name);
    this.plot?.destroy();
    this.plot = null; // rebuilt on the next flush with every series
  }

  /** Plot against ``axis`` (a key of X_AXES) from now on. */
  setAxis(axis) {
    if (!(axis in X_AXES) || axis === this.axis) return;
    this.axis = axis;
    this.plot?.destroy();
    this.plot = null;
    this.dirty = true;
  }

  /** uPlot columns for the current axis: rows without that x, or going back on it, are left out. */
  data() {
    const xs = [];
    const cols = this.names.map(() => []);
    let lastX = -Infinity;
    for (const { at, values } of this.rows) {
      const x = at[this.axis];
      if (x === null || x === undefined || !Number.isFinite(x) || x < lastX) continue;
      lastX = x;
      xs.push(x);
      this.names.forEach((name, i) => {
        const v = values[name];
        cols[i].push(v === null || v === undefined || !Number.isFinite(v) ? null : v);
      });
    }
    return [xs, ...cols];
  }

  flush() {
    if (!this.dirty) return;
    this.dirty = false;
    if (!this.plot) {
      this.plot = new uPlot(this.options(), this.data(), this.el);
    } else {
      this.plot.setData(this.data());
    }
    this.showLatest();
  }

  options() {
    const axis = X_AXES[this.axis];
    const x = xAxisOptions(axis.time, axis.label);
    const unit = this.group.unit;
    const y = unit === "fraction" ? { range: [0, 1] } : {};
    const title = unit ? `${this.group.title} (${unit})` : this.group.title;
    return {
      title,
      ...sizeOf(this.el, 220),
      scales: { x: x.scale, y },
      series: [
        { label: axis.label },
        ...this.names.map((name, i) => ({
          label: name,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: true,
        })),
      ],
      axes: [x.axis, { stroke: "#9aa4b2", size: 60, label: unit, labelSize: 18 }],
      legend: { live: true },
      hooks: { setCursor: [() => this.showLatest()] }, // the cursor left: back to the newest
    };
  }

  /** Legend values show the newest point unless the cursor is on the chart. */
  showLatest() {
    const n = this.plot?.data[0].length ?? 0;
    if (n && this.plot.cursor.idx == null) this.plot.setLegend({ idx: n - 1 });
  }

  resize() {
    this.plot?.setSize(sizeOf(this.el, 220));
  }

  /** Rows held, points plotted, series names and axis, for tests and the console. */
  summary() {
    return {
      title: this.group.title,
      names: [...this.names],
      unit: this.group.unit,
      points: this.rows.length,
      plotted: this.plot ? this.plot.data[0].length : 0,
      axis: this.axis,
      xTicks: this.plot ? [...(this.plot.axes[0]._values ?? [])] : [],
      legend: [...(this.plot?.root.querySelectorAll(".u-value") ?? [])].map((e) => e.textContent),
    };
  }
}

/**
 * The current rollout's Q value per step, with the spans a human drove shaded.
 * Samples: {step, q, human: bool}; a new episode clears the strip.
 */
export class QStrip {
  constructor(container) {
    this.el = container;
    this.columns = [[], []];
    this.human = [];
    this.episode = null;
    this.dirty = false;
    this.plot = new uPlot(this.options(), this.columns, container);
  }

  add(episode, step, q, human) {
    if (episode !== this.episode) {
      this.episode = episode;
      this.columns = [[], []];
      this.human = [];
    }
    this.columns[0].push(step);
    this.columns[1].push(Number.isFinite(q) ? q : null);
    this.human.push(Boolean(human));
    trim([...this.columns, this.human]);
    this.dirty = true;
  }

  flush() {
    if (!this.dirty) return;
    this.dirty = false;
    this.plot.setData(this.columns);
  }

  /** [first step, last step] of each run of human-driven steps. */
  humanSpans() {
    const spans = [];
    const xs = this.columns[0];
    this.human.forEach((on, i) => {
      if (!on) return;
      const last = spans[spans.length - 1];
      if (last && i > 0 && this.human[i - 1]) last[1] = xs[i];
      else spans.push([xs[i], xs[i]]);
    });
    return spans;
  }

  shade(u) {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--human").trim();
    for (const [a, b] of this.humanSpans()) {
      const x0 = u.valToPos(a - 0.5, "x", true);
      const x1 = u.valToPos(b + 0.5, "x", true);
      ctx.fillRect(x0, bbox.top, Math.max(2, x1 - x0), bbox.height);
    }
    ctx.restore();
  }

  options() {
    return {
      title: "Current rollout: Q of the executed action (shaded: human driving)",
      ...sizeOf(this.el, 200),
      scales: { x: xAxisOptions(false, "step").scale },
      series: [{ label: "step" }, { label: "Q", stroke: "#4f9dff", width: 1.5 }],
      axes: [xAxisOptions(false, "step").axis, { stroke: "#9aa4b2", size: 60, label: "Q" }],
      hooks: { drawClear: [(u) => this.shade(u)] },
    };
  }

  resize() {
    this.plot.setSize(sizeOf(this.el, 200));
  }

  summary() {
    return { episode: this.episode, points: this.columns[0].length, humanSpans: this.humanSpans() };
  }
}
