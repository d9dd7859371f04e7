// What the learner is doing, in plain words, from its metrics (names in docs/learner_service.md):
// waiting for demos (n/m), pre-training x %, training, published vN, learner down.

import { fmtDuration } from "./ui.js";

// Index of `learner/state` (learner/service/metrics.py STATES).
const STATES = [
  "starting",
  "waiting_for_data",
  "waiting_for_demos",
  "pretraining",
  "waiting_for_steps",
  "training",
  "imitation_only",
];
// The learner publishes every 0.5 s (learner/service/outbox.py); silence this long means down.
export const LEARNER_DOWN_S = 10;

function count(metrics, name) {
  const x = metrics[name];
  return typeof x === "number" && Number.isFinite(x) ? Math.round(x) : null;
}

/**
 * The status text of one metrics message, or null when it carries no `learner/state`
 * (e.g. "waiting for demos (1/3)", "IL-only warm-up (1/2 rollouts, 800/50000 updates)").
 */
export function learnerStatus(metrics) {
  return count(metrics ?? {}, "learner/state") === null ? null : describeLearner(metrics).text;
}

/**
 * The learner's status from its newest metrics and their age (s):
 * {state, text, version} with state one of none | down | starting | waiting_for_data |
 * waiting_for_demos | pretraining | waiting_for_steps | training, e.g.
 * {state: "waiting_for_demos", text: "waiting for demos (1/3)", version: 0} or
 * {state: "training", text: "training · published v4", version: 4}.
 */
export function describeLearner(metrics, ageS = 0) {
  if (!metrics) return { state: "none", text: "no learner has reported yet", version: null };
  const version = count(metrics, "weights/version");
  const published = version ? ` · published v${version}` : "";
  if (ageS > LEARNER_DOWN_S) {
    const last = version ? ` (last published v${version})` : "";
    const text = `learner down: no metrics for ${fmtDuration(ageS)}${last}`;
    return { state: "down", text, version };
  }
  const index = count(metrics, "learner/state");
  if (index === null) return { state: "training", text: `running${published}`, version };
  const state = STATES[index] ?? "starting";
  const words = {
    starting: () => "starting",
    waiting_for_data: () => waitingForData(metrics),
    waiting_for_demos: () => `waiting for demos${demoParts(metrics)}`,
    pretraining: () => `pre-training ${pretrainPercent(metrics)}`,
    waiting_for_steps: () => "waiting for env steps",
    training: () => warmup(metrics) || "training",
    imitation_only: () => warmup(metrics) || "training",
  };
  const kind = state === "imitation_only" ? "training" : state;
  return { state: kind, text: `${words[state]()}${published}`, version };
}

/**
 * Before the first episode the learner has no data at all; after pre-training it waits in the
 * same state for enough rollout transitions to start RL updates, with the demos already
 * buffered. The live status-line test (tests/e2e/test_status_line_live.py) caught the line
 * saying "no episode recorded yet" there, next to "published v1".
 */
function waitingForData(metrics) {
  const buffered = count(metrics, "buffer/total");
  return buffered
    ? `waiting for rollouts (${buffered} transitions buffered)`
    : "waiting for data (no episode recorded yet)";
}

/** " (1/3)", " (1/3, 40/200 steps)" or "". */
function demoParts(metrics) {
  const parts = [];
  const demos = count(metrics, "learner/demos_required");
  if (demos) parts.push(`${count(metrics, "learner/demos") ?? 0}/${demos}`);
  const steps = count(metrics, "learner/demo_steps_required");
  if (steps) parts.push(`${count(metrics, "learner/demo_steps") ?? 0}/${steps} steps`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

function pretrainPercent(metrics) {
  const x = metrics["bc/pretrain_progress"];
  return typeof x === "number" && Number.isFinite(x) ? `${Math.round(x * 100)} %` : "0 %";
}

/** "IL-only warm-up (1/2 rollouts, 800/50000 updates)" while the warm-up lasts, else "". */
function warmup(metrics) {
  if (count(metrics, "learner/il_only") !== 1) return "";
  const parts = [];
  const rollouts = count(metrics, "learner/warmup_rollouts_required");
  const seen = count(metrics, "learner/warmup_rollouts") ?? 0;
  if (rollouts && seen < rollouts) parts.push(`${seen}/${rollouts} rollouts`);
  const updates = count(metrics, "learner/warmup_updates_required");
  const done = count(metrics, "learner/update_step") ?? 0;
  if (updates && done < updates) parts.push(`${done}/${updates} updates`);
  return parts.length ? `IL-only warm-up (${parts.join(", ")})` : "";
}

/**
 * The learner's newest metrics merged over messages (a message may carry a subset), with
 * the browser time they arrived, for the status line.
 */
export class LearnerTracker {
  constructor() {
    this.metrics = null;
    this.seenAt = null; // unix s (browser clock)
    this.runId = null;
  }

  /** One metrics row; `at`: when it was produced or arrived, unix s. */
  update(runId, metrics, at) {
    if (runId && runId !== this.runId) this.metrics = null; // a new run starts over
    this.runId = runId ?? this.runId;
    this.metrics = { ...(this.metrics ?? {}), ...metrics };
    this.seenAt = Math.max(this.seenAt ?? 0, at);
  }

  status(now = Date.now() / 1000) {
    return describeLearner(this.metrics, this.seenAt === null ? 0 : now - this.seenAt);
  }
}
