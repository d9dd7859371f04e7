// Raw operator input: the Gamepad API polled every animation frame, and the keyboard.
// Nothing here maps input to robot actions; the server does that (teleop/).

/** Standard-mapping button names, index = W3C "standard" gamepad button index. */
export const PAD_BUTTONS = [
  "A",
  "B",
  "X",
  "Y",
  "LB",
  "RB",
  "LT",
  "RT",
  "Back",
  "Start",
  "LS",
  "RS",
  "Up",
  "Down",
  "Left",
  "Right",
  "Home",
];

/** A snapshot of one gamepad: plain arrays, safe to JSON-encode. */
export function padSnapshot(pad) {
  return {
    id: String(pad.id ?? ""),
    index: pad.index ?? 0,
    mapping: String(pad.mapping ?? ""),
    axes: Array.from(pad.axes ?? [], (x) => (Number.isFinite(x) ? x : 0)),
    buttons: Array.from(pad.buttons ?? [], (b) => ({
      pressed: Boolean(b?.pressed),
      value: Number.isFinite(b?.value) ? b.value : b?.pressed ? 1 : 0,
    })),
    timestamp: Number(pad.timestamp ?? 0),
  };
}

/** The first connected gamepad, preferring the standard mapping; null if none. */
export function firstPad() {
  const pads = Array.from(navigator.getGamepads?.() ?? []).filter(
    (p) => p && p.connected !== false,
  );
  return pads.find((p) => p.mapping === "standard") ?? pads[0] ?? null;
}

/**
 * Polls navigator.getGamepads() every requestAnimationFrame (never relies on the
 * gamepadconnected event) and calls onSample(snapshot | null, changed) each frame.
 * `changed` is true when the pressed buttons differ from the previous frame.
 */
export class GamepadPoller {
  constructor(onSample) {
    this.onSample = onSample;
    this.last = null;
    this.running = true;
    this.frame = this.frame.bind(this);
    requestAnimationFrame(this.frame);
  }

  frame() {
    if (!this.running) return;
    const pad = firstPad();
    const snap = pad ? padSnapshot(pad) : null;
    const pressed = snap ? snap.buttons.map((b) => b.pressed).join() : "";
    const changed = pressed !== this.last;
    this.last = pressed;
    this.onSample(snap, changed);
    requestAnimationFrame(this.frame);
  }

  stop() {
    this.running = false;
  }
}

/** Keys the keyboard fallback forwards (KeyboardEvent.code). */
export const KEYS = new Set([
  "KeyW",
  "KeyA",
  "KeyS",
  "KeyD",
  "KeyQ",
  "KeyE",
  "KeyC",
  "KeyZ",
  "Space",
  "ShiftLeft",
  "ShiftRight",
  "ArrowUp",
  "ArrowDown",
  "ArrowLeft",
  "ArrowRight",
]);

/** Tracks held keys; onChange(keys[]) fires on every press or release of a forwarded key. */
export class KeyboardInput {
  constructor(onChange) {
    this.held = new Set();
    this.onChange = onChange;
    window.addEventListener("keydown", (ev) => this.key(ev, true));
    window.addEventListener("keyup", (ev) => this.key(ev, false));
    window.addEventListener("blur", () => this.clear());
  }

  key(ev, down) {
    if (!KEYS.has(ev.code)) return;
    const target = ev.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
    ev.preventDefault();
    if (down === this.held.has(ev.code)) return;
    if (down) this.held.add(ev.code);
    else this.held.delete(ev.code);
    this.onChange([...this.held]);
  }

  clear() {
    if (this.held.size === 0) return;
    this.held.clear();
    this.onChange([]);
  }

  get keys() {
    return [...this.held];
  }
}
