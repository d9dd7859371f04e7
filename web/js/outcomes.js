// One set of words for an episode's outcome on every page (Training, Episodes): the
// operator's label (success, failure, discard) or "unlabeled", and why the episode ended.

/** "success", "unlabeled", "failure, incomplete", ...: the label and the row's state. */
export function outcomeText(ep) {
  const parts = [ep.outcome ?? "unlabeled"];
  if (ep.discarded) parts.push("discarded");
  if (ep.recording) parts.push("recording");
  else if (ep.complete === false) parts.push("incomplete");
  return parts.join(", ");
}

// robot_bridge/bridge.py end reasons.
const REASONS = {
  success: "task success",
  operator_label: "operator's label",
  time_limit: "time limit",
  safety_stop: "safety stop",
  take_over: "take-over",
  eval_stopped: "evaluation stopped",
};

/** Why an episode ended, in words: "time limit", "task success", ... or an em dash. */
export function endText(reason) {
  if (!reason) return "—";
  return REASONS[reason] ?? String(reason).replaceAll("_", " ");
}

/** The Episodes page's replay of one episode. */
export function replayHref(id) {
  return `/episodes.html?episode=${encodeURIComponent(id)}`;
}
