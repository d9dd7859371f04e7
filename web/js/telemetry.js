// The /ws/telemetry subscriber: robot state, learner metrics, episode summaries, rollout Q.

import { Socket } from "./net.js";

/**
 * Calls handlers[msg.type](msg) for each telemetry message; unknown types are ignored
 * (the server may add streams this page does not draw). Also onopen()/onclose().
 */
export class Telemetry {
  constructor(handlers) {
    this.handlers = handlers;
    this.received = 0;
    this.socket = new Socket(
      "/ws/telemetry",
      {},
      {
        onopen: () => handlers.onopen?.(),
        onclose: () => handlers.onclose?.(),
        onjson: (msg) => this.receive(msg),
      },
    );
  }

  receive(msg) {
    this.received += 1;
    const batch = msg.type === "batch" && Array.isArray(msg.messages) ? msg.messages : [msg];
    for (const item of batch) {
      const handler = this.handlers[item.type];
      if (typeof handler === "function") handler(item);
    }
  }

  close() {
    this.socket.close();
  }
}
