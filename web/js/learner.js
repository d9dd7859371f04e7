// What the learner is doing, in words, from its metrics (names in docs/learner_service.md).

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

function count(metrics, name) {
  const x = metrics[name];
  return typeof x === "number" && Number.isFinite(x) ? Math.round(x) : null;
}

/**
 * "waiting for demos (1/3)", "IL-only warm-up (1/2 rollouts, 800/50000 updates)",
 * "training", ... or null.
 */
export function learnerStatus(metrics) {
  const index = count(metrics, "learner/state");
  if (index === null) return null;
  const state = STATES[index] ?? `state ${index}`;
  if (state === "waiting_for_demos") {
    const parts = [];
    const demos = count(metrics, "learner/demos_required");
    if (demos) parts.push(`${count(metrics, "learner/demos") ?? 0}/${demos}`);
    const steps = count(metrics, "learner/demo_steps_required");
    if (steps) parts.push(`${count(metrics, "learner/demo_steps") ?? 0}/${steps} steps`);
    return `waiting for demos${parts.length ? ` (${parts.join(", ")})` : ""}`;
  }
  if (count(metrics, "learner/il_only") === 1) {
    const parts = warmupParts(metrics);
    if (parts.length) return `IL-only warm-up (${parts.join(", ")})`;
  }
  return state.replaceAll("_", " ");
}

/** What the IL-only warm-up still waits for: rollouts and critic updates not yet reached. */
function warmupParts(metrics) {
  const parts = [];
  const rollouts = count(metrics, "learner/warmup_rollouts_required");
  const seen = count(metrics, "learner/warmup_rollouts") ?? 0;
  if (rollouts && seen < rollouts) parts.push(`${seen}/${rollouts} rollouts`);
  const updates = count(metrics, "learner/warmup_updates_required");
  const done = count(metrics, "learner/update_step") ?? 0;
  if (updates && done < updates) parts.push(`${done}/${updates} updates`);
  return parts;
}
