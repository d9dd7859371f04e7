"""Server latency benchmark: camera fan-out and control input-to-bridge latency on loopback.

Runs ``tandem server`` as a real process against a fake bridge (real ZMQ
protocol, in this process) and measures:

* camera fan-out: the bridge publishes JPEG frames at ``--fps``; with 1, 4 and
  16 viewer WebSocket clients on ``/ws/camera`` it reports frames/s received
  per client and the capture-to-send (server stamp) and capture-to-receive
  latency p50/p99, in ms;
* control: one operator on ``/ws/control`` holds the lease and sends gamepad
  input; for each sample it times the moment the bridge's ROUTER receives the
  resulting ``TeleopAction`` (p50/p99 in ms). Probes are sent one at a time
  (``--probes``), plus a burst at ``--input-hz`` to report throughput.

All clocks are the same host's (wall clock for camera stamps, monotonic for
control), so no clock sync is needed. Usage::

    python bench/server_latency.py [--seconds 5] [--fps 30] [--size 96]

With ``--json`` each line is one JSON object, keyed by ``case`` (camera, control, burst).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import cv2
import httpx
import numpy as np
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout

from server.fake_bridge import FakeBridge  # noqa: E402

HEADER = struct.Struct("<IIdd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    bridge: FakeBridge, data_dir: Path, port: int
) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "TANDEM_DATA_DIR": str(data_dir),
        "TANDEM_LOG_LEVEL": "WARNING",
        "TANDEM_SERVER__BRIDGES": json.dumps([bridge.pub_endpoint]),
        "TANDEM_SERVER__BRIDGE_CMD_ENDPOINTS": json.dumps([bridge.cmd_endpoint]),
        "TANDEM_SERVER__LEARNER_METRICS_ENDPOINT": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tandem", "server", "--port", str(port), "--no-record"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"login\?token=(\S+)", line)
        if match:
            break
    else:
        raise RuntimeError("server exited before printing its login link")
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            response = httpx.post(f"{base}/api/auth/exchange", json={"token": match.group(1)})
            return proc, response.json()["token"]
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("server did not come up")


def emit(as_json: bool, record: dict[str, Any], text: str) -> None:
    print(json.dumps(record) if as_json else text, flush=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def camera_client(url: str, stop_at: float, out: dict[str, list[float]]) -> None:
    async with connect(url, max_size=None) as ws:
        while time.time() < stop_at:
            try:
                data = await asyncio.wait_for(ws.recv(), timeout=max(0.01, stop_at - time.time()))
            except TimeoutError:
                break
            t_recv = time.time() * 1000.0
            assert isinstance(data, bytes), "camera frames are binary messages"
            _, _, t_capture, t_send = HEADER.unpack(data[:24])
            out["t"].append(t_recv / 1000.0)
            out["send"].append(t_send - t_capture)
            out["recv"].append(t_recv - t_capture)


async def publish_frames(
    bridge: FakeBridge, jpeg: bytes, fps: float, stop_at: float, shape: tuple[int, int]
) -> int:
    seq = 0
    period = 1.0 / fps
    next_t = time.monotonic()
    while time.time() < stop_at:
        seq += 1
        bridge.publish_frame("front", jpeg, seq, time.monotonic(), shape=shape)
        next_t += period
        await asyncio.sleep(max(0.0, next_t - time.monotonic()))
    return seq


async def camera_fanout(
    bridge: FakeBridge,
    base: str,
    token: str,
    viewers: int,
    *,
    args: argparse.Namespace,
    jpeg: bytes,
) -> None:  # fmt: skip
    url = f"ws://{base}/ws/camera?cam=front&token={token}"
    results: list[dict[str, list[float]]] = [
        {"t": [], "send": [], "recv": []} for _ in range(viewers)
    ]
    warm = time.time() + 1.0
    stop_at = warm + args.seconds
    publisher = asyncio.ensure_future(
        publish_frames(bridge, jpeg, args.fps, stop_at, (args.size, args.size))
    )
    await asyncio.gather(*(camera_client(url, stop_at, r) for r in results))
    sent = await publisher

    # only frames received in the measuring window count (the first second warms up)
    def window(r: dict[str, list[float]], key: str) -> list[float]:
        return [x for t, x in zip(r["t"], r[key], strict=True) if t >= warm]

    rates = [len(window(r, "recv")) / args.seconds for r in results]
    send = [x for r in results for x in window(r, "send")]
    recv = [x for r in results for x in window(r, "recv")]
    record = {
        "case": "camera", "viewers": viewers, "fps": args.fps,
        "published_fps": round(sent / (args.seconds + 1.0), 2),
        "fps_min": round(min(rates), 2), "fps_mean": round(float(np.mean(rates)), 2),
        "send_p50_ms": round(pct(send, 50), 3), "send_p99_ms": round(pct(send, 99), 3),
        "recv_p50_ms": round(pct(recv, 50), 3), "recv_p99_ms": round(pct(recv, 99), 3),
    }  # fmt: skip
    text = (
        f"camera  viewers={viewers:2d}  published={record['published_fps']:5.1f}/s  "
        f"per-client fps min/mean={min(rates):5.1f}/{np.mean(rates):5.1f}  "
        f"capture->send p50={pct(send, 50):6.2f} p99={pct(send, 99):6.2f} ms  "
        f"capture->recv p50={pct(recv, 50):6.2f} p99={pct(recv, 99):6.2f} ms"
    )
    emit(args.json, record, text)


def gamepad(seq: int, x: float) -> str:
    buttons = [{"pressed": i == 5, "value": 1.0 if i == 5 else 0.0} for i in range(17)]
    return json.dumps({"v": 1, "seq": seq, "type": "gamepad", "axes": [x, 0.0, 0.0, 0.0],
                       "buttons": buttons, "t_input": time.time() * 1000.0})  # fmt: skip


async def control_latency(
    bridge: FakeBridge, base: str, token: str, args: argparse.Namespace
) -> None:
    async with connect(f"ws://{base}/ws/control?token={token}") as ws:
        await ws.send(json.dumps({"v": 1, "seq": 0, "type": "claim"}))
        while json.loads(await ws.recv()).get("you_hold") is not True:
            pass
        await ws.send(json.dumps({"v": 1, "seq": 1, "type": "command", "name": "start_demo"}))
        latencies = []
        for i in range(args.probes):
            before = len(bridge.wait_for("teleop_action", timeout=0))
            t0 = time.monotonic()
            await ws.send(gamepad(i + 2, 0.5 + 0.4 * np.sin(i)))
            got = await asyncio.to_thread(bridge.wait_for, "teleop_action", 2.0, before + 1)
            if len(got) > before:
                latencies.append((got[before].t_rx - t0) * 1000.0)
            await asyncio.sleep(1.0 / args.input_hz)
        record = {"case": "control", "n": len(latencies), "probes": args.probes,
                  "p50_ms": round(pct(latencies, 50), 3), "p99_ms": round(pct(latencies, 99), 3),
                  "max_ms": round(max(latencies, default=float("nan")), 3)}  # fmt: skip
        text = (
            f"control input->bridge (one at a time, n={len(latencies)}): "
            f"p50={record['p50_ms']:.2f} ms  p99={record['p99_ms']:.2f} ms  "
            f"max={record['max_ms']:.2f} ms"
        )
        emit(args.json, record, text)
        await control_burst(bridge, ws, args)


async def control_burst(bridge: FakeBridge, ws: object, args: argparse.Namespace) -> None:
    before = len(bridge.wait_for("teleop_action", timeout=0))
    n = int(args.input_hz * args.seconds)
    t_start = time.monotonic()
    for i in range(n):
        await ws.send(gamepad(10_000 + i, 0.7))  # type: ignore[attr-defined]
        await asyncio.sleep(max(0.0, t_start + (i + 1) / args.input_hz - time.monotonic()))
    await asyncio.sleep(0.5)
    arrived = len(bridge.wait_for("teleop_action", timeout=0)) - before
    record = {"case": "burst", "input_hz": args.input_hz, "seconds": args.seconds,
              "sent": n, "arrived": arrived}  # fmt: skip
    text = (
        f"control burst at {args.input_hz:.0f} Hz for {args.seconds:.0f} s: {n} inputs sent, "
        f"{arrived} actions reached the bridge (keep-latest may coalesce)"
    )
    emit(args.json, record, text)


async def main_async(args: argparse.Namespace) -> None:
    bridge = FakeBridge("robot0").start()
    image = np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 0)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    with TemporaryDirectory() as tmp:
        port = free_port()
        proc, token = start_server(bridge, Path(tmp), port)
        base = f"127.0.0.1:{port}"
        try:
            print(f"frame {args.size}x{args.size} JPEG {len(jpeg)} bytes at {args.fps} fps; "
                  f"{os.cpu_count()} CPUs (shared machine: figures are noisy)",
                  file=sys.stderr if args.json else sys.stdout)  # fmt: skip
            for viewers in args.viewers:
                await camera_fanout(bridge, base, token, viewers, args=args, jpeg=jpeg)
            await control_latency(bridge, base, token, args)
        finally:
            proc.terminate()
            proc.wait(10)
            bridge.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per case")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frames per second")
    parser.add_argument("--size", type=int, default=96, help="square image size in pixels")
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--probes", type=int, default=300, help="control latency samples")
    parser.add_argument("--input-hz", type=float, default=60.0, help="control input rate")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
