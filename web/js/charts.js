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

/** Chart groups, first match wins; metric names are documented in docs/metrics.md. */
export const GROUPS = [
  { id: "success", title: "Success rate & return", match: /success|return/i },
  { id: "intervention", title: "Intervention rate", match: /interven/i },
  { id: "ibrl", title: "IL proposal selected (IBRL)", match: /bc_selected|selected_frac|^ibrl\//i },
  { id: "q", title: "Q values & critic loss", match: /(^|[/_])q($|[/_])|critic|td_error|td\//i },
  { id: "rate", title: "Updates per second", match: /per_s(ec)?$|\/s$|fps|throughput/i },
  { id: "buffer", title: "Buffer sizes", match: /buffer|replay/i },
  { id: "weights", title: "Weights version & lag", match: /weights|version|lag/i },
  { id: "other", title: "Other metrics", match: /.*/ },
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
  }

  options() {
    const axis = X_AXES[this.axis];
    return {
      title: this.group.title,
      ...sizeOf(this.el, 220),
      scales: { x: { time: axis.time } },
      series: [
        { label: axis.label },
        ...this.names.map((name, i) => ({
          label: name,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          spanGaps: true,
        })),
      ],
      axes: [{ stroke: "#9aa4b2" }, { stroke: "#9aa4b2", size: 60 }],
      legend: { live: true },
    };
  }

  resize() {
    this.plot?.setSize(sizeOf(this.el, 220));
  }

  /** Rows held, points plotted, series names and axis, for tests and the console. */
  summary() {
    return {
      title: this.group.title,
      names: [...this.names],
      points: this.rows.length,
      plotted: this.plot ? this.plot.data[0].length : 0,
      axis: this.axis,
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
      scales: { x: { time: false } },
      series: [{ label: "step" }, { label: "Q", stroke: "#4f9dff", width: 1.5 }],
      axes: [{ stroke: "#9aa4b2" }, { stroke: "#9aa4b2", size: 60 }],
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
