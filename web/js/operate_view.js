// Operate page, what to show: which buttons work now and why not, the end of an episode,
// the gripper and the end effector's orientation. Pure functions of the robot's status.

const ACTIVE = ["teleop", "rollout", "intervention"];
const EPISODE_OR_RESET = "only while an episode runs or in await reset";

/** Episode buttons: the modes in which each works (bridge mode machine, robot_bridge/modes.py). */
export const BUTTONS = [
  { id: "start-demo", label: "Start demo", modes: ["idle", "await_reset"] },
  { id: "start-rollout", label: "Start rollout", modes: ["idle", "await_reset"], policy: true },
  { id: "takeover", label: "Take over", modes: ["rollout", "intervention"] },
  { id: "success", label: "Success", modes: [...ACTIVE, "await_reset"], labels: true },
  { id: "failure", label: "Failure", modes: [...ACTIVE, "await_reset"], labels: true },
  { id: "discard", label: "Discard", modes: [...ACTIVE, "await_reset"], labels: true },
  { id: "reset-done", label: "Reset done", modes: ["await_reset"] },
];

function modeReason(button, mode) {
  if (button.labels) return EPISODE_OR_RESET;
  if (button.id === "takeover") return "only during a rollout";
  if (button.id === "reset-done") return "only in await reset, after an episode";
  if (ACTIVE.includes(mode)) return "an episode is running: label it first";
  return "only in idle or await reset";
}

/**
 * Why each episode button cannot be used now, or null when it can.
 * ctx: {connected, status (BridgeStatus or null), lease ({holder, you_hold}), user (name or
 * null), lastKind (kind of the episode that ended last, or null)}. A free lease does not
 * disable a button: pressing it takes control first. Returns {id: reason | null}.
 */
export function buttonReasons({ connected, status, lease, user, lastKind }) {
  const mode = status?.mode ?? null;
  const reasons = {};
  for (const b of BUTTONS) {
    let why = null;
    if (!connected) why = "not connected to the server";
    else if (!mode) why = "no status from the robot yet";
    else if (mode === "estop") why = "the e-stop is latched: clear it first";
    else if (!b.modes.includes(mode)) why = modeReason(b, mode);
    else if (b.policy && !status.policy_ready) why = "no policy is loaded yet";
    else if (b.labels && mode === "await_reset" && lastKind === "evaluation")
      why = "evaluation episodes are scored by the robot";
    else if (lease.holder && !lease.you_hold) why = holderReason(lease.holder, user);
    reasons[b.id] = why;
  }
  return reasons;
}

function holderReason(holder, user) {
  return holder === user ? "you have control on another page" : `${holder} has control`;
}

/** Group the reasons into lines, one per distinct reason: [{ids, text}], in button order. */
export function reasonLines(reasons) {
  const lines = new Map();
  for (const b of BUTTONS) {
    const why = reasons[b.id];
    if (!why) continue;
    if (!lines.has(why)) lines.set(why, []);
    lines.get(why).push(b);
  }
  return [...lines].map(([why, buttons]) => ({
    ids: buttons.map((b) => b.id),
    text: `${buttons.map((b) => b.label).join(", ")}: ${why}`,
  }));
}

/** "42 / 200" (step of the running episode against its limit), or a dash. */
export function stepText(status) {
  if (!status?.episode_id) return "—";
  return status.horizon ? `${status.step} / ${status.horizon}` : String(status.step);
}

const HOW_TO_LABEL =
  "Label it: Success / Failure / Discard (keys 1 / 2 / 3, gamepad Y / B / Back), then Reset done.";

/**
 * The message shown when an episode ends, from its `episode_summary` (and its `episode_label`
 * events): what ended it, its outcome, and what to do next. Returns {text, needsLabel}.
 */
export function endMessage(summary, horizon) {
  const steps = `${summary.length} steps`;
  const kind = summary.episode_kind === "demo" ? "Demo" : "Episode";
  const label = summary.outcome;
  const labelled = label ? ` Labelled ${label}.` : "";
  const next = label ? " Reset the scene, then press Reset done." : ` ${HOW_TO_LABEL}`;
  switch (summary.reason) {
    case "time_limit": {
      const limit = horizon ? `time limit (${horizon} steps)` : `time limit (${steps})`;
      return { text: `${kind} ended: ${limit}.${labelled}${next}`, needsLabel: !label };
    }
    case "success":
      return {
        text: `${kind} ended: task success detected (${steps}).${labelled}${next}`,
        needsLabel: !label,
      };
    case "operator_label":
      return { text: `${kind} ended: labelled ${label} (${steps}).${next}`, needsLabel: false };
    case "safety_stop":
      return {
        text: `${kind} ended: stopped for safety (${steps}).${labelled} Clear the e-stop to go on.`,
        needsLabel: false,
      };
    case "take_over":
      return {
        text:
          `Evaluation episode ended: taken over (${steps}), counted as a failure. ` +
          "Reset the scene, then press Reset done.",
        needsLabel: false,
      };
    default:
      return {
        text: `${kind} ended: ${summary.reason} (${steps}).${labelled}${next}`,
        needsLabel: false,
      };
  }
}

/** Gripper opening in [0, 1] (1 open) as words: "open (100 %)", "closed (3 %)". */
export function gripperText(opening) {
  if (opening === null || opening === undefined || !Number.isFinite(opening)) return "—";
  const pct = Math.round(opening * 100);
  return `${opening >= 0.5 ? "open" : "closed"} (${pct} %)`;
}

/**
 * Roll, pitch, yaw in degrees (intrinsic Z-Y-X: yaw about z, then pitch about y, then roll
 * about x) of a unit quaternion [w, x, y, z] in the robot's base frame; null if missing.
 */
export function rpyDegrees(quat) {
  if (!Array.isArray(quat) || quat.length !== 4 || !quat.every(Number.isFinite)) return null;
  const [w, x, y, z] = quat;
  const roll = Math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y));
  const pitch = Math.asin(Math.max(-1, Math.min(1, 2 * (w * y - z * x))));
  const yaw = Math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z));
  return [roll, pitch, yaw].map((a) => (a * 180) / Math.PI);
}

/** "roll 180.0° pitch 0.0° yaw 90.0°", or a dash. */
export function orientationText(quat) {
  const rpy = rpyDegrees(quat);
  if (!rpy) return "—";
  return ["roll", "pitch", "yaw"].map((name, i) => `${name} ${rpy[i].toFixed(1)}°`).join("  ");
}
