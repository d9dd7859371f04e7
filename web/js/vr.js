// VR page: an immersive WebXR session that streams the driving controller's grip pose and
// buttons every XR frame (raw, WebXR local-floor frame); the server maps them (teleop/).
// ?emulate=iwer installs Meta's IWER emulated runtime (tests and development without a headset).
// The driving controller is the server's teleop.xr_hand (GET /api/teleop/mapping); ?hand=left or
// ?hand=right overrides it for this page.

import { setLink, startPage } from "./common.js";
import { ControlClient } from "./control.js";
import { api } from "./net.js";
import { Telemetry } from "./telemetry.js";
import { $, fmt, fmtMs, showMode, toast } from "./ui.js";
import { XRHud } from "./xrhud.js";

const params = new URLSearchParams(location.search);
const HANDS = ["left", "right"];
let HAND = HANDS.includes(params.get("hand")) ? params.get("hand") : null;
// IWER marks every pose of its emulated runtime as emulatedPosition; that flag means
// "tracking lost" only on a real headset.
const EMULATED_RUNTIME = params.get("emulate") === "iwer";
const PRESSED = 0.5; // analog value above which a button counts as pressed
const HUD_PERIOD_MS = 200;

const page = {
  control: null,
  status: null,
  session: null,
  refSpace: null,
  gl: null,
  hud: null,
  framesSent: 0,
  last: null,
  prev: { squeeze: false, a: false, b: false, stick: false },
  tookOver: false,
  tracked: true,
  hudAt: 0,
};
// Read-only handle for the browser console and the browser tests.
window.tandem = page;

async function installEmulator() {
  if (params.get("emulate") !== "iwer") return;
  const { XRDevice, metaQuest3 } = await import("/node_modules/iwer/build/iwer.module.min.js");
  const device = new XRDevice(metaQuest3);
  // Desktop Chromium has a native navigator.xr without immersive support; replace it.
  device.installRuntime({ forceInstall: true });
  window.__xrDevice = device;
}

/** The VR hand of the server's mapping; the right one when the mapping cannot be read. */
async function serverHand() {
  try {
    const mapping = await api("/api/teleop/mapping");
    return HANDS.includes(mapping.xr_hand) ? mapping.xr_hand : "right";
  } catch (err) {
    toast(`Controller mapping unavailable (${err.message}): the right controller drives.`, {
      error: true,
    });
    return "right";
  }
}

async function main() {
  await startPage();
  HAND = HAND ?? (await serverHand());
  await installEmulator();
  page.control = new ControlClient({
    onlease: (lease) => {
      $("lease").textContent = lease.you_hold
        ? "You have control"
        : lease.holder
          ? `${lease.holder} has control`
          : "Nobody has control";
    },
    onerror: (text) => toast(text, { error: true }),
    onopen: () => setLink(true),
    onclose: () => setLink(false),
  });
  new Telemetry({ state: onState });
  $("estop").addEventListener("click", estop);
  $("enter-xr").addEventListener("click", () => enter("immersive-vr"));
  $("enter-ar").addEventListener("click", () => enter("immersive-ar"));
  $("exit-xr").addEventListener("click", () => page.session?.end());
  setInterval(() => ($("rtt").textContent = fmtMs(page.control.rttMs)), 250);
  await checkSupport();
}

async function estop() {
  try {
    await api("/api/estop", { method: "POST", body: { reason: "operator e-stop (VR page)" } });
  } catch (err) {
    const ack = await page.control.command("estop");
    if (!ack.ok) toast(`E-STOP FAILED: ${err.message}`, { error: true });
  }
}

async function checkSupport() {
  const xr = navigator.xr;
  const vr = xr ? await xr.isSessionSupported("immersive-vr").catch(() => false) : false;
  const ar = xr ? await xr.isSessionSupported("immersive-ar").catch(() => false) : false;
  $("enter-xr").disabled = !vr;
  $("enter-ar").hidden = !ar;
  $("xr-support").textContent = vr
    ? `WebXR ready (${HAND} controller drives).`
    : window.isSecureContext
      ? "This browser has no immersive WebXR. Open this page in the headset's browser."
      : "WebXR needs https or localhost (for example adb reverse).";
}

function onState(msg) {
  page.status = msg;
  showMode($("mode"), msg.mode);
  $("episode").textContent = msg.episode_id ? `${msg.episode_kind ?? ""} ${msg.episode_id}` : "—";
  $("step").textContent = msg.episode_id ? String(msg.step) : "—";
  $("ee").textContent = msg.ee_pos ? msg.ee_pos.map((x) => fmt(x, 3)).join(", ") : "—";
  $("gripper").textContent = fmt(msg.gripper, 2);
}

/** Start an immersive session; must run inside a user gesture (the button click). */
async function enter(mode) {
  try {
    const session = await navigator.xr.requestSession(mode, { requiredFeatures: ["local-floor"] });
    const canvas = $("xr-canvas");
    const gl = canvas.getContext("webgl2", { xrCompatible: true });
    if (!gl) throw new Error("WebGL2 is not available");
    await gl.makeXRCompatible?.();
    // Frames are delivered only once a base layer is set.
    session.updateRenderState({ baseLayer: new XRWebGLLayer(session, gl) });
    page.refSpace = await session.requestReferenceSpace("local-floor");
    page.refSpace.addEventListener("reset", () => xrEvent("recenter"));
    session.addEventListener("visibilitychange", () =>
      xrEvent("visibility", { state: session.visibilityState }),
    );
    session.addEventListener("end", onEnd);
    Object.assign(page, { session, gl, hud: new XRHud(gl), tookOver: false });
    page.control.claim();
    $("session").textContent = `${mode} running`;
    $("enter-xr").hidden = true;
    $("enter-ar").hidden = true;
    $("exit-xr").hidden = false;
    session.requestAnimationFrame(onFrame);
  } catch (err) {
    toast(`Could not start the XR session: ${err.message}`, { error: true });
  }
}

function onEnd() {
  xrEvent("visibility", { state: "hidden" });
  page.control.release();
  page.session = null;
  $("session").textContent = "ended";
  $("enter-xr").hidden = false;
  $("exit-xr").hidden = true;
  checkSupport();
}

function xrEvent(kind, extra = {}) {
  if (page.control.lease.you_hold) page.control.input("xr_event", { kind, ...extra });
}

function onFrame(time, frame) {
  const session = frame.session;
  session.requestAnimationFrame(onFrame);
  const source = [...session.inputSources].find((s) => s.handedness === HAND && s.gripSpace);
  if (source) streamController(frame, source);
  render(frame);
}

function buttonValues(gamepad) {
  const value = (i) => Math.max(0, Math.min(1, gamepad?.buttons[i]?.value ?? 0));
  return {
    trigger: value(0),
    squeeze: value(1),
    stick: value(3),
    a: value(4),
    b: value(5),
  };
}

/** Send this frame's grip pose and buttons, and act on button edges. */
function streamController(frame, source) {
  const pose = frame.getPose(source.gripSpace, page.refSpace);
  const values = buttonValues(source.gamepad);
  const tracked = Boolean(pose);
  const controller = {
    hand: HAND,
    buttons: { squeeze: values.squeeze, trigger: values.trigger, a: values.a, b: values.b },
    tracked,
    emulated: !EMULATED_RUNTIME && Boolean(pose?.emulatedPosition),
    position: null,
    orientation: null,
  };
  if (pose) {
    const { position: p, orientation: q } = pose.transform;
    const n = Math.hypot(q.x, q.y, q.z, q.w) || 1;
    controller.position = [p.x, p.y, p.z];
    controller.orientation = [q.x / n, q.y / n, q.z / n, q.w / n];
  }
  if (page.tracked && !tracked) xrEvent("tracking_lost");
  page.tracked = tracked;
  if (page.control.lease.you_hold) {
    page.control.input("xr", { controller });
    page.framesSent += 1;
  }
  page.last = controller;
  buttonEdges(values);
}

function buttonEdges(values) {
  const now = {
    squeeze: values.squeeze > PRESSED,
    a: values.a > PRESSED,
    b: values.b > PRESSED,
    stick: values.stick > PRESSED,
  };
  const rose = (k) => now[k] && !page.prev[k];
  const fell = (k) => !now[k] && page.prev[k];
  const mode = page.status?.mode;
  if (rose("squeeze") && mode === "rollout") {
    page.tookOver = true;
    command("take_over");
  }
  if (fell("squeeze") && page.tookOver) {
    page.tookOver = false;
    command("hand_back");
  }
  if (rose("a")) command({ idle: "start_demo", await_reset: "reset_done" }[mode] ?? "success");
  if (rose("b")) command("failure");
  if (rose("stick")) xrEvent("set_forward");
  page.prev = now;
}

async function command(name) {
  const ack = await page.control.command(name);
  if (!ack.ok) toast(`${name.replace("_", " ")}: ${ack.reason || "refused"}`, { error: true });
}

function render(frame) {
  const { gl, hud } = page;
  const layer = frame.session.renderState.baseLayer;
  const viewer = frame.getViewerPose(page.refSpace);
  gl.bindFramebuffer(gl.FRAMEBUFFER, layer.framebuffer);
  gl.clearColor(0.08, 0.09, 0.11, 1);
  gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  if (!viewer) return;
  const now = performance.now();
  if (now - page.hudAt > HUD_PERIOD_MS) {
    page.hudAt = now;
    hud.setLines(hudLines());
    updatePanel();
  }
  for (const view of viewer.views) {
    const vp = layer.getViewport(view);
    gl.viewport(vp.x, vp.y, vp.width, vp.height);
    hud.draw(view);
  }
}

function hudLines() {
  const s = page.status ?? {};
  const clutch = page.last?.buttons.squeeze > PRESSED ? "grip HELD (clutch)" : "grip released";
  return [
    `Mode: ${(s.mode ?? "offline").replace("_", " ")}`,
    s.episode_id ? `Episode ${s.episode_kind ?? ""} step ${s.step}` : "No episode",
    s.ee_pos ? `EE ${s.ee_pos.map((x) => fmt(x, 2)).join(", ")} m` : "EE —",
    clutch,
    page.control.lease.you_hold ? "You have control" : "No control lease",
    `RTT ${fmtMs(page.control.rttMs)}`,
  ];
}

function updatePanel() {
  const c = page.last;
  $("controller").textContent = c?.position
    ? `${c.position.map((x) => fmt(x, 3)).join(", ")}`
    : "not tracked";
  $("clutch").textContent = c?.buttons.squeeze > PRESSED ? "held" : "released";
  $("frames").textContent = String(page.framesSent);
}

main();
