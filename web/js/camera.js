// Live camera views: /ws/camera?cam=NAME sends binary frames (a small header, then a JPEG).
// Only the newest frame is drawn; frames that arrive while one is decoding replace the queue.

import { Socket } from "./net.js";
import { parseCameraFrame } from "./protocol.js";

export class CameraView {
  /**
   * @param {HTMLCanvasElement} canvas where frames are drawn (resized to the image)
   * @param {string} cam camera name
   * @param {(frame) => void} [onFrame] called after each drawn frame with its header
   */
  constructor(canvas, cam, onFrame) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.cam = cam;
    this.onFrame = onFrame;
    this.pending = null;
    this.decoding = false;
    this.drawn = 0;
    this.last = null;
    this.socket = new Socket("/ws/camera", { cam }, { onbinary: (buf) => this.receive(buf) });
  }

  receive(buf) {
    let frame;
    try {
      frame = parseCameraFrame(buf);
    } catch (err) {
      console.warn(`camera ${this.cam}: ${err.message}`);
      return;
    }
    this.pending = frame;
    if (!this.decoding) this.drawNewest();
  }

  async drawNewest() {
    this.decoding = true;
    while (this.pending) {
      const frame = this.pending;
      this.pending = null;
      let bitmap;
      try {
        bitmap = await createImageBitmap(new Blob([frame.jpeg], { type: "image/jpeg" }));
      } catch {
        console.warn(`camera ${this.cam}: undecodable JPEG dropped`);
        continue;
      }
      if (this.canvas.width !== bitmap.width || this.canvas.height !== bitmap.height) {
        this.canvas.width = bitmap.width;
        this.canvas.height = bitmap.height;
      }
      this.ctx.drawImage(bitmap, 0, 0);
      bitmap.close();
      this.drawn += 1;
      frame.t_drawn_ms = Date.now();
      this.last = frame;
      this.onFrame?.(frame);
    }
    this.decoding = false;
  }

  close() {
    this.socket.close();
  }
}
