// Operate page: cameras, mode, e-stop, episode commands, control lease, device input, latency.
// Buttons work only in the modes that allow them and say why not; an ended episode says how
// it ended and how to label it; refused input says why (js/operate_view.js); the policy's
// uncertainty is drawn per step with an "unsure" badge (js/unsure.js).

import { setLink, startPage } from "./common.js";
import { CameraView } from "./camera.js";
import { ControlClient, nowMs } from "./control.js";
import { GamepadPoller, KeyboardInput, PAD_BUTTONS } from "./devices.js";
import { EvalControls } from "./evals.js";
import { learnerStatus } from "./learner.js";
import { api } from "./net.js";
import { ProcessesPanel } from "./processes.js";
import {
  BUTTONS,
  buttonReasons,
  endMessage,
  gripperText,
  orientationText,
  reasonLines,
  stepText,
} from "./operate_view.js";
import { Telemetry } from "./telemetry.js";
import { UnsureMeter } from "./unsure.js";
import { $, fmt, fmtMs, h, showMode, toast } from "./ui.js";

const PAD_SEND_PERIOD_MS = 33; // ~30 Hz of gamepad samples while holding the lease
const KEY_REPEAT_MS = 100; // keep held keys fresh for the server's input watchdog
const HEARTBEAT_MS = 1000; // an empty keyboard sample keeps the lease of an idle, visible page
const REFUSED_SHOWN_MS = 2500; // a refused-input notice stays this long after the last refusal
const HUMAN_DRIVEN = ["teleop", "intervention"];
// Keyboard shortcuts for labels (KeyboardEvent.code -> button id).
const LABEL_KEYS = { Digit1: "success", Digit2: "failure", Digit3: "discard" };
// Buttons the server's mapping leaves free (teleop/gamepad.py) act as episode commands on press;
// the deadman and gripper buttons come from the server (GET /api/teleop/mapping).
const PAD_COMMANDS = {
  3: () => "success", // Y
  1: () => "failure", // B
  8: () => "discard", // Back
  9: (mode) => ({ idle: "start_demo", await_reset: "reset_done" })[mode] ?? null, // Start
};
// Camera names: ?cams=front,wrist (default: the bridge's default cameras).
const CAMERAS = (new URLSearchParams(location.search).get("cams") ?? "front,wrist")
  .split(",")
  .map((c) => c.trim())
  .filter(Boolean);

const page = {
  control: null,
  status: null,
  cams: new Map(),
  processes: null,
  frameAgeMs: null,
  device: "none",
  padSentAt: 0,
  keysSentAt: 0,
  keyboard: null,
  takeoverHeld: false,
  padTookOver: false,
  padDeadman: false,
  padPressed: [],
  mapping: null, // the server's device mapping (teleop settings); null until loaded
  evalControls: null,
  tookOverEval: false, // a take-over ends an evaluation episode: nothing to hand back
  user: null, // the logged-in user's name
  ended: null, // episode_summary of the episode that ended last (with its latest label)
  refusedUntil: 0, // the refused-input notice is shown until then (nowMs)
  unsure: null, // UnsureMeter: the policy's uncertainty of the current episode
};
// Read-only handle for the browser console and the browser tests.
window.tandem = page;

async function main() {
  page.user = (await startPage())?.name ?? null;
  page.mapping = await loadMapping();
  page.unsure = new UnsureMeter(
    {
      chart: $("unsure-chart"),
      badge: $("unsure"),
      value: $("unsure-value"),
      sound: $("unsure-sound"),
    },
    {
      threshold: page.mapping?.unsure_threshold ?? null,
      window: page.mapping?.unsure_window ?? 5,
    },
  );
  page.control = new ControlClient({
    onlease: showLease,
    onerror: (text) => toast(text, { error: true }),
    oninputrefused: showRefused,
    onopen: () => {
      setLink(true);
      showButtons();
    },
    onclose: () => {
      setLink(false);
      showLease({ holder: null, you_hold: false });
    },
  });
  new Telemetry({
    state: onState,
    metrics: onMetrics,
    episode_start: onEpisodeStart,
    episode_summary: onEpisodeSummary,
    episode_label: onEpisodeLabel,
    rollout: (msg) => {
      if (ours(msg)) page.unsure.add(msg);
    },
  });
  page.processes = new ProcessesPanel($("processes"));
  page.evalControls = new EvalControls($("eval-controls"), {
    robot: () => page.status?.robot_id ?? null,
  });
  for (const cam of CAMERAS) ensureCamera(cam);
  wireButtons();
  wireTakeover();
  page.keyboard = new KeyboardInput(onKeys);
  new GamepadPoller(onPad);
  showButtons();
  setInterval(tick, 100);
}

/** The server's gamepad/keyboard mapping; null (no gamepad take-over) when it cannot be read. */
async function loadMapping() {
  try {
    const mapping = await api("/api/teleop/mapping");
    const name = (i) => PAD_BUTTONS[i] ?? `b${i}`;
    $("pad-deadman").textContent = name(mapping.deadman_button);
    $("pad-gripper").textContent = name(mapping.gripper_button);
    return mapping;
  } catch (err) {
    toast(`Gamepad mapping unavailable: ${err.message}`, { error: true });
    return null;
  }
}

/** Whether the mapping's deadman button is held on ``pad``. */
function deadmanHeld(pad) {
  const index = page.mapping?.deadman_button;
  return index != null && Boolean(pad.buttons[index]?.pressed);
}

function showLease(lease) {
  $("lease").textContent = lease.you_hold
    ? "You have control"
    : lease.holder
      ? `${lease.holder} has control`
      : "Nobody has control";
  $("claim").hidden = Boolean(lease.you_hold);
  $("release").hidden = !lease.you_hold;
  showButtons();
}

/** Enable the episode buttons that work now; say why the others do not. */
function showButtons() {
  const reasons = buttonReasons({
    connected: page.control.connected,
    status: page.status,
    lease: page.control.lease,
    user: page.user,
    lastKind: page.ended?.episode_kind ?? null,
  });
  for (const { id, label } of BUTTONS) {
    const button = $(id);
    // A held take-over button stays live, so that letting go of it hands back.
    button.disabled = Boolean(reasons[id]) && !(id === "takeover" && page.takeoverHeld);
    button.title = reasons[id] ? `${label}: ${reasons[id]}` : "";
  }
  const lines = reasonLines(reasons).map(({ ids, text }) =>
    h("li", { "data-for": ids.join(" ") }, text),
  );
  $("why-disabled").replaceChildren(...lines);
}

/** Show why device input was refused (by the server, or here without the lease). */
function showRefused(text) {
  const el = $("input-refused");
  el.textContent = text.charAt(0).toUpperCase() + text.slice(1);
  el.hidden = false;
  page.refusedUntil = nowMs() + REFUSED_SHOWN_MS;
}

/** Input this page does not send: nobody gave it the lease. */
function refuseLocally(what) {
  const holder = page.control.lease.holder;
  const who = holder ? `${holder} has control` : "take control first (Take control, or Start demo)";
  showRefused(`${what} ignored: ${who}`);
}

/** Claim the lease if this page does not hold it; resolves to true once held. */
async function ensureLease(timeoutMs = 2000) {
  if (page.control.lease.you_hold) return true;
  page.control.claim();
  const t0 = performance.now();
  while (!page.control.lease.you_hold && performance.now() - t0 < timeoutMs) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return page.control.lease.you_hold;
}

async function runCommand(name) {
  if (name !== "estop" && name !== "clear_estop" && !(await ensureLease())) {
    toast(`${name.replace("_", " ")}: someone else has control`, { error: true });
    return { ok: false };
  }
  const ack = await page.control.command(name);
  if (!ack.ok) toast(`${name.replace("_", " ")}: ${ack.reason || "refused"}`, { error: true });
  return ack;
}

async function estop() {
  try {
    await api("/api/estop", { method: "POST", body: { reason: "operator e-stop (dashboard)" } });
  } catch (err) {
    // The REST path failed; the control socket is the second way to stop the robot.
    const ack = await page.control.command("estop");
    if (!ack.ok) toast(`E-STOP FAILED: ${err.message}`, { error: true });
  }
}

function wireButtons() {
  $("estop").addEventListener("click", estop);
  const commands = {
    "start-demo": "start_demo",
    "start-rollout": "start_rollout",
    success: "success",
    failure: "failure",
    discard: "discard",
    "reset-done": "reset_done",
    "clear-estop": "clear_estop",
  };
  for (const [id, name] of Object.entries(commands)) {
    $(id).addEventListener("click", () => runCommand(name));
  }
  window.addEventListener("keydown", (ev) => {
    const id = LABEL_KEYS[ev.code];
    const target = ev.target;
    if (!id || ev.repeat || target instanceof HTMLInputElement) return;
    if ($(id).disabled) toast($(id).title, { error: true });
    else runCommand(commands[id]);
  });
  $("claim").addEventListener("click", () => page.control.claim());
  $("release").addEventListener("click", () => page.control.release());
}

/** Hold-to-take-over: pressing the button takes over, releasing it hands back. */
function wireTakeover() {
  const button = $("takeover");
  const press = (ev) => {
    ev.preventDefault();
    if (page.takeoverHeld) return;
    page.takeoverHeld = true;
    button.classList.add("held");
    button.setPointerCapture?.(ev.pointerId);
    takeOver();
  };
  const letGo = () => {
    if (!page.takeoverHeld) return;
    page.takeoverHeld = false;
    button.classList.remove("held");
    handBack();
    showButtons();
  };
  button.addEventListener("pointerdown", press);
  button.addEventListener("pointerup", letGo);
  button.addEventListener("pointercancel", letGo);
  button.addEventListener("lostpointercapture", letGo);
}

function onPad(pad, changed) {
  if (!pad) {
    if (page.device.startsWith("gamepad")) page.device = "none";
    return;
  }
  page.device = `gamepad: ${pad.id || "unnamed"}`;
  deadmanEdges(deadmanHeld(pad));
  commandButtons(pad.buttons.map((b) => b.pressed));
  const held = pad.buttons.map((b, i) => (b.pressed ? (PAD_BUTTONS[i] ?? `b${i}`) : null));
  const axes = pad.axes
    .slice(0, 4)
    .map((x) => fmt(x, 2))
    .join(" ");
  $("device-input").textContent = `${held.filter(Boolean).join("+") || "no buttons"} | ${axes}`;
  const now = nowMs();
  if (!page.control.lease.you_hold) {
    if (deadmanHeld(pad)) refuseLocally("Gamepad");
    return;
  }
  if (!changed && now - page.padSentAt < PAD_SEND_PERIOD_MS) return;
  page.padSentAt = now;
  page.control.input("gamepad", {
    id: pad.id.slice(0, 200) || null,
    axes: pad.axes.slice(0, 8).map((x) => Math.max(-1, Math.min(1, x))),
    buttons: pad.buttons.slice(0, 20).map((b) => ({
      pressed: b.pressed,
      value: Math.max(0, Math.min(1, b.value)),
    })),
  });
}

/** Take over a rollout; in an evaluation episode this ends it as a failure (told once). */
function takeOver() {
  page.tookOverEval = page.status?.episode_kind === "evaluation";
  if (page.tookOverEval) toast("Taking over ends this evaluation episode as a failure");
  runCommand("take_over");
}

function handBack() {
  if (page.tookOverEval) {
    page.tookOverEval = false;
    return; // the evaluation episode already ended: the robot waits for reset done
  }
  runCommand("hand_back");
}

/** Holding the deadman during a rollout takes over; letting go hands back. */
function deadmanEdges(held) {
  const mode = page.status?.mode;
  if (held && !page.padDeadman && mode === "rollout" && page.control.lease.you_hold) {
    page.padTookOver = true;
    takeOver();
  }
  if (!held && page.padDeadman && page.padTookOver) {
    page.padTookOver = false;
    handBack();
  }
  page.padDeadman = held;
}

function commandButtons(pressed) {
  if (!page.mapping) return;
  const mapped = [page.mapping.deadman_button, page.mapping.gripper_button];
  for (const [index, pick] of Object.entries(PAD_COMMANDS)) {
    const i = Number(index);
    if (mapped.includes(i)) continue; // the mapping uses it: it moves the robot
    if (pressed[i] && !page.padPressed[i] && page.control.lease.you_hold) {
      const name = pick(page.status?.mode);
      if (name) runCommand(name);
    }
  }
  page.padPressed = pressed;
}

function onKeys(keys) {
  if (keys.length) page.device = "keyboard";
  $("device-input").textContent = keys.join("+") || "no keys";
  sendKeys(keys);
}

function sendKeys(keys) {
  if (!page.control.lease.you_hold) {
    if (keys.length) refuseLocally("Keys");
    return;
  }
  page.keysSentAt = nowMs();
  page.control.input("keyboard", { keys });
}

function onState(msg) {
  page.status = msg;
  showMode($("mode"), msg.mode);
  page.evalControls.update(msg);
  const estopped = msg.mode === "estop";
  $("estop").classList.toggle("latched", estopped);
  $("clear-estop").hidden = !estopped;
  $("robot").textContent = `${msg.robot_id ?? "—"} (${msg.robot ?? "?"})`;
  $("episode").textContent = msg.episode_id ? `${msg.episode_kind ?? ""} ${msg.episode_id}` : "—";
  $("step").textContent = stepText(msg);
  $("ee").textContent = msg.ee_pos ? msg.ee_pos.map((x) => fmt(x, 3)).join(", ") : "—";
  $("ee-rpy").textContent = orientationText(msg.ee_quat);
  $("gripper").textContent = gripperText(msg.gripper);
  if (HUMAN_DRIVEN.includes(msg.mode)) {
    page.refusedUntil = 0;
    $("input-refused").hidden = true;
  }
  showButtons();
  showEnded();
  $("policy").textContent = policyText(msg);
}

/** What the policy slot holds, as the operator reads it. */
function policyText(msg) {
  if (!msg.policy_ready) return "none loaded";
  if (msg.policy_kind === "play") return "explorer: the robot plays (no task policy)";
  const version = msg.weights_version ?? null;
  if (version === null) return msg.policy_kind === "expert" ? "scripted expert" : "ready";
  return `weights v${version}` + (msg.weights_lag ? ` (${msg.weights_lag} behind)` : "");
}

function ours(msg) {
  return !page.status || msg.robot_id === page.status.robot_id;
}

function onEpisodeStart(msg) {
  if (ours(msg)) page.ended = null;
  showEnded();
}

function onEpisodeSummary(msg) {
  if (!ours(msg)) return;
  page.ended = { ...msg };
  showEnded();
  showButtons();
}

function onEpisodeLabel(msg) {
  if (page.ended?.episode_id !== msg.episode_id) return;
  page.ended.outcome = msg.outcome;
  showEnded();
}

/** While the robot waits for a reset (or is stopped), say how the last episode ended. */
function showEnded() {
  const el = $("episode-end");
  const mode = page.status?.mode;
  el.hidden = mode !== "await_reset" && !(mode === "estop" && page.ended);
  if (el.hidden) return;
  const { text, needsLabel } = page.ended
    ? endMessage(page.ended, page.status?.horizon)
    : { text: "Episode ended. Label it if needed, then press Reset done.", needsLabel: false };
  el.textContent = text;
  el.classList.toggle("warn", needsLabel);
}

/** Learner metrics rows: say what the learner is doing or waiting for. */
function onMetrics(msg) {
  const rows = Array.isArray(msg.rows) ? msg.rows : [msg];
  for (const row of rows) {
    const text = learnerStatus(row?.scalars ?? {});
    if (text) $("learner").textContent = text;
  }
}

function ensureCamera(name) {
  if (page.cams.has(name)) return;
  const canvas = h("canvas", { width: 96, height: 96, "data-cam": name });
  $("cams").append(h("div", { class: "cam" }, canvas, h("span", { class: "label" }, name)));
  $("no-cams").hidden = true;
  page.cams.set(name, new CameraView(canvas, name, onFrame));
}

/** Frame age: capture (bridge clock) to drawn (this browser's clock), ms. */
function onFrame(frame) {
  if (frame.t_capture_ms > 0) page.frameAgeMs = frame.t_drawn_ms - frame.t_capture_ms;
}

function tick() {
  const keys = page.keyboard.keys;
  const since = nowMs() - Math.max(page.keysSentAt, page.padSentAt);
  if (keys.length && nowMs() - page.keysSentAt >= KEY_REPEAT_MS) sendKeys(keys);
  else if (since >= HEARTBEAT_MS && document.visibilityState === "visible") sendKeys(keys);
  $("rtt").textContent = fmtMs(page.control.rttMs);
  const sent = page.control.lastInputMs;
  $("input-age").textContent = sent ? fmtMs(nowMs() - sent) : "—";
  $("frame-age").textContent = fmtMs(page.frameAgeMs);
  $("device").textContent = page.device;
  page.unsure.flush();
  if (page.refusedUntil && nowMs() > page.refusedUntil) {
    page.refusedUntil = 0;
    $("input-refused").hidden = true;
  }
}

main();
