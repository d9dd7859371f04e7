// The policy's uncertainty on the operate page: a sparkline of the current episode's per-step
// uncertainty (the `uncertainty` of `rollout` telemetry) against the server's threshold, an
// "unsure" badge while the mean of the last `window` steps is at or above it, and an optional
// beep when it turns on (off by default; the checkbox click is the gesture audio needs).

import uPlot from "/node_modules/uplot/dist/uPlot.esm.js";

const MAX_STEPS = 600; // points kept for one episode (a minute at 10 Hz)
const SOUND_KEY = "tandem.unsureSound";

export class UnsureMeter {
  /**
   * @param {{chart: HTMLElement, badge: HTMLElement, value: HTMLElement,
   *          sound: HTMLInputElement}} els
   * @param {{threshold: number, window: number}} config  the server's teleop.unsure_* settings
   */
  constructor(els, config) {
    this.els = els;
    this.threshold = Number.isFinite(config.threshold) ? config.threshold : null; // null: unknown
    this.window = Math.max(1, config.window);
    this.episode = null;
    this.columns = [[], [], []]; // step, uncertainty, threshold
    this.unsure = false;
    this.beeps = 0;
    this.audio = null;
    this.dirty = false;
    els.sound.checked = localStorage.getItem(SOUND_KEY) === "on";
    els.sound.addEventListener("change", () => this.setSound(els.sound.checked));
    this.plot = new uPlot(this.options(), this.columns, els.chart);
  }

  /** One `rollout` telemetry message of the robot shown on this page. */
  add(msg) {
    if (msg.episode_id !== this.episode) this.clear(msg.episode_id);
    const u = msg.uncertainty;
    if (msg.source !== "policy" && u == null) return; // a human step without a policy proposal
    this.columns[0].push(msg.step);
    this.columns[1].push(Number.isFinite(u) ? u : null);
    this.columns[2].push(this.threshold);
    for (const col of this.columns) if (col.length > MAX_STEPS) col.shift();
    this.dirty = true;
    this.update();
  }

  clear(episode) {
    this.episode = episode;
    this.columns = [[], [], []];
    this.dirty = true;
    this.update();
  }

  /** Mean of the last `window` reported values (null when there are none). */
  recentMean() {
    const values = this.columns[1].slice(-this.window).filter((v) => v != null);
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  }

  update() {
    const mean = this.recentMean();
    const unsure = mean != null && this.threshold != null && mean >= this.threshold;
    if (unsure && !this.unsure) this.beep();
    this.unsure = unsure;
    const { badge, value } = this.els;
    badge.hidden = !unsure;
    badge.title = unsure ? `mean of the last ${this.window} steps >= ${this.threshold}` : "";
    const last = this.columns[1][this.columns[1].length - 1];
    value.textContent =
      mean == null
        ? "no uncertainty reported"
        : `${last == null ? "—" : last.toFixed(3)} (mean of last ${this.window}: ` +
          `${mean.toFixed(3)}; unsure at ${this.threshold ?? "? (no threshold from the server)"})`;
  }

  setSound(on) {
    localStorage.setItem(SOUND_KEY, on ? "on" : "off");
    if (on && !this.audio && window.AudioContext) this.audio = new AudioContext();
  }

  beep() {
    if (!this.els.sound.checked) return;
    this.beeps += 1;
    const ctx = this.audio;
    if (!ctx) return;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.1;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.15);
  }

  flush() {
    if (!this.dirty) return;
    this.dirty = false;
    this.plot.setData(this.columns);
  }

  options() {
    const width = Math.max(200, this.els.chart.clientWidth || 320);
    return {
      width,
      height: 90,
      legend: { show: false },
      scales: {
        x: { time: false },
        y: { range: (u, lo, hi) => [0, Math.max(hi ?? 0, this.threshold ?? 0, 0.01) * 1.2] },
      },
      series: [
        { label: "step" },
        { label: "uncertainty", stroke: "#4f9dff", width: 1.5, points: { show: false } },
        { label: "threshold", stroke: "#f0b429", width: 1, dash: [4, 4], points: { show: false } },
      ],
      axes: [
        { stroke: "#9aa4b2", size: 24 },
        { stroke: "#9aa4b2", size: 40 },
      ],
    };
  }

  summary() {
    return {
      episode: this.episode,
      step: this.columns[0][this.columns[0].length - 1] ?? null,
      points: this.columns[0].length,
      plotted: this.plot.data[0].length,
      last: this.columns[1][this.columns[1].length - 1] ?? null,
      mean: this.recentMean(),
      unsure: this.unsure,
      threshold: this.threshold,
      window: this.window,
      sound: this.els.sound.checked,
      beeps: this.beeps,
    };
  }
}
