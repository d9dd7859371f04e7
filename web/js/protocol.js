// Server message formats the pages read: camera frame headers and telemetry messages.
// Formats are those of docs/server.md; this module is the one place that knows the binary ones.

const JPEG_SOI = [0xff, 0xd8, 0xff];

/** Bytes of the binary camera header: uint32 frame_seq, uint32 flags, float64 t_capture_ms,
 * float64 t_send_ms (little-endian; times are Unix epoch milliseconds). */
export const CAMERA_HEADER_BYTES = 24;

/**
 * Split one binary /ws/camera message into its header fields and the JPEG bytes.
 * Returns {frame_seq, flags, t_capture_ms, t_send_ms, jpeg}; throws Error when the
 * buffer is not such a frame.
 */
export function parseCameraFrame(buf) {
  if (buf.byteLength < CAMERA_HEADER_BYTES + JPEG_SOI.length) {
    throw new Error(`camera frame too short (${buf.byteLength} bytes)`);
  }
  const view = new DataView(buf);
  const jpeg = new Uint8Array(buf, CAMERA_HEADER_BYTES);
  if (!JPEG_SOI.every((b, i) => jpeg[i] === b)) throw new Error("camera payload is not a JPEG");
  return {
    frame_seq: view.getUint32(0, true),
    flags: view.getUint32(4, true),
    t_capture_ms: view.getFloat64(8, true),
    t_send_ms: view.getFloat64(16, true),
    jpeg,
  };
}
