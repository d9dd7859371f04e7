// Server message formats the pages read: camera frame headers and telemetry messages.
// Formats are those of docs/server.md; this module is the one place that knows them.

const JPEG_SOI = [0xff, 0xd8, 0xff];

/**
 * Split one binary /ws/camera message into its header fields and the JPEG bytes.
 * Layout (little-endian): uint32 header_len, then header_len bytes of JSON header,
 * then the JPEG. Throws Error when the buffer is not such a frame.
 */
export function parseCameraFrame(buf) {
  const bytes = new Uint8Array(buf);
  if (bytes.length < 8) throw new Error(`camera frame too short (${bytes.length} bytes)`);
  const headerLen = new DataView(buf).getUint32(0, true);
  if (headerLen > 4096 || 4 + headerLen > bytes.length) {
    throw new Error(`camera frame header length ${headerLen} is invalid`);
  }
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + headerLen)));
  const jpeg = bytes.subarray(4 + headerLen);
  if (!JPEG_SOI.every((b, i) => jpeg[i] === b)) throw new Error("camera payload is not a JPEG");
  return { ...header, jpeg };
}

/** Telemetry message kinds the pages handle, keyed by the message's `type`. */
export const TELEMETRY_TYPES = ["state", "metrics", "episode", "rollout", "event"];
