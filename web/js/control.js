// The /ws/control client: lease, commands, raw device input and round-trip pings.
// Message formats: docs/control_protocol.md (tandem/messages/control.py).

import { Socket } from "./net.js";

const PROTOCOL_VERSION = 1;
const PING_PERIOD_MS = 1000;
const COMMAND_TIMEOUT_MS = 5000;

/** Browser epoch milliseconds, the clock of every t_input / t_client field. */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

const INPUT_SEQS_KEPT = 64; // recent device-input seqs, to tell refused input from other errors

/**
 * Events (all optional callbacks in `handlers`):
 *   onlease({holder, you_hold, expires_in_s}), onack(ack), onerror(text),
 *   oninputrefused(text): an `error` answering device input (falls back to onerror),
 *   onrtt(ms), onopen(), onclose().
 * command() always resolves (never rejects) to {ok, reason, ...}.
 */
export class ControlClient {
  constructor(handlers = {}) {
    this.handlers = handlers;
    this.seq = 0;
    this.lease = { holder: null, you_hold: false };
    this.rttMs = null;
    this.lastInputMs = null;
    this.pending = new Map();
    this.inputSeqs = new Set();
    this.wantLease = false;
    this.socket = new Socket(
      "/ws/control",
      {},
      {
        onopen: () => this.opened(),
        onclose: () => this.closedSocket(),
        onjson: (msg) => this.receive(msg),
      },
    );
    this.pinger = setInterval(() => this.ping(), PING_PERIOD_MS);
  }

  get connected() {
    return this.socket.open;
  }

  opened() {
    this.ping();
    if (this.wantLease) this.send("claim", {});
    this.handlers.onopen?.();
  }

  closedSocket() {
    this.lease = { holder: null, you_hold: false };
    for (const [seq, { resolve }] of this.pending)
      resolve({ ref_seq: seq, ok: false, reason: "control socket closed" });
    this.pending.clear();
    this.handlers.onclose?.();
  }

  /** Send one protocol message; returns its seq, or null when the socket is down. */
  send(type, body) {
    const seq = this.seq++;
    return this.socket.send({ v: PROTOCOL_VERSION, seq, type, ...body }) ? seq : null;
  }

  receive(msg) {
    switch (msg.type) {
      case "lease":
        this.lease = msg;
        this.handlers.onlease?.(msg);
        break;
      case "pong":
        this.rttMs = nowMs() - msg.t_client;
        this.handlers.onrtt?.(this.rttMs);
        break;
      case "ack":
        this.settle(msg);
        this.handlers.onack?.(msg);
        break;
      case "error":
        if (this.inputSeqs.has(msg.ref_seq) && this.handlers.oninputrefused)
          this.handlers.oninputrefused(msg.message);
        else this.handlers.onerror?.(msg.message);
        if (msg.ref_seq != null)
          this.settle({ ref_seq: msg.ref_seq, ok: false, reason: msg.message });
        break;
      default:
        console.warn(`control: ignoring unknown message type ${JSON.stringify(msg.type)}`);
    }
  }

  settle(ack) {
    const entry = this.pending.get(ack.ref_seq);
    if (!entry) return;
    this.pending.delete(ack.ref_seq);
    entry.resolve(ack);
  }

  ping() {
    this.send("ping", { t_client: nowMs() });
  }

  claim(operator) {
    this.wantLease = true;
    this.send("claim", operator ? { operator } : {});
  }

  release() {
    this.wantLease = false;
    this.send("release", {});
  }

  /** Send an operator command; resolves to the server's ack ({ok, reason, mode}). */
  command(name, reason) {
    const seq = this.send("command", reason ? { name, reason } : { name });
    if (seq === null) return Promise.resolve({ ok: false, reason: "not connected", name });
    return new Promise((resolve) => {
      this.pending.set(seq, { resolve });
      setTimeout(
        () => this.settle({ ref_seq: seq, ok: false, reason: "no answer from the server" }),
        COMMAND_TIMEOUT_MS,
      );
    });
  }

  /** Send raw device input: type is "gamepad", "keyboard", "xr" or "xr_event". */
  input(type, body) {
    const t = nowMs();
    const seq = this.send(type, { ...body, t_input: t });
    if (seq === null) return;
    this.lastInputMs = t;
    this.inputSeqs.add(seq);
    if (this.inputSeqs.size > INPUT_SEQS_KEPT) {
      this.inputSeqs.delete(this.inputSeqs.values().next().value); // the oldest
    }
  }

  close() {
    clearInterval(this.pinger);
    this.socket.close();
  }
}
