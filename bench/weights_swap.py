"""Does loading a new policy bundle disturb the bridge's control loop? (issue 5)

Runs a real bridge (``sim:lift``, cameras as configured, 10 Hz) in this process
with ``--policy learner``: its ``LearnerPolicySlot`` receives bundles from a
publisher subprocess (the learner's ``Outbox`` with a real ``IBRLAgent``
bundle) and the loop keeps rolling out with the policy acting on every tick.
Two phases of equal length: without new weights, then with a new bundle every
``--every`` seconds. Prints tick lateness and work time for both, plus the
ticks that ran while a bundle was being loaded.

    python bench/weights_swap.py [--seconds 20] [--every 1.0] [--profile cpu|pixel]

With ``--json`` each line is one JSON object, keyed by ``phase`` (without_swaps,
with_swaps, while_loading, swaps).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from robot_bridge.app import build_bridge  # noqa: E402
from robot_bridge.bridge import Bridge  # noqa: E402
from robot_bridge.policy import Policy  # noqa: E402
from robot_bridge.weights import LearnerPolicySlot, default_loader  # noqa: E402
from tandem import wire  # noqa: E402
from tandem.messages import Command, ResetDone, StartRollout  # noqa: E402
from tandem.settings import BridgeSettings, load_settings  # noqa: E402


def free_endpoint() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


# ---------------------------------------------------------------------------- publisher
def publisher(args: argparse.Namespace) -> int:
    """Child process: build an agent for the spec and publish a bundle on command."""
    from learner.bc import BCPolicy
    from learner.bundle import make_bundle
    from learner.ibrl import IBRLAgent
    from learner.obs import ObsSpec
    from learner.service.outbox import Outbox

    settings = load_settings(args.profile_file)
    cfg = settings.learner.model_copy(update={"device": "cpu"})
    spec = ObsSpec.from_json(json.loads(args.spec))
    il = BCPolicy(
        spec, hidden=cfg.bc_hidden_dim, layers=cfg.bc_layers, dropout=cfg.bc_dropout,
        pixel_dropout=cfg.bc_pixel_dropout, resnet_width=cfg.bc_resnet_width,
    )  # fmt: skip
    agent = IBRLAgent(cfg, spec, il, "cpu")
    blob, config = make_bundle(cfg, spec, agent=agent, il=il)
    box = Outbox("bench", args.publish, free_endpoint(), lambda: (0, 0, {}))
    box.start()
    print(f"bundle {len(blob) / 1e6:.2f} MB", file=sys.stderr, flush=True)
    for version, line in enumerate(sys.stdin, start=1):  # one line = one more version
        if line.strip() == "quit":
            break
        box.publish_weights(
            blob, version=version, method=cfg.method, il_version=0, update_step=version,
            config={"spec": config["spec"]},
        )  # fmt: skip
    box.close()
    return 0


# ---------------------------------------------------------------------------- bridge side
class Recorder:
    """Per-tick (time, lateness ms, work ms) and the bundle-loading intervals."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, float, float]] = []
        self.loads: list[tuple[float, float]] = []

    def loader(self, bundle: bytes | memoryview) -> Policy:
        t0 = time.monotonic()
        policy = default_loader(bundle)
        self.loads.append((t0, time.monotonic()))
        return policy


def run_bridge(
    args: argparse.Namespace, weights_ep: str
) -> tuple[Recorder, Bridge, BridgeSettings]:
    bridge_over = {
        "robot": "sim:lift", "pub_endpoint": free_endpoint(), "cmd_endpoint": free_endpoint(),
        "weights_endpoint": weights_ep, "horizon": 100_000, "rate_hz": args.rate,
        "image_size": args.image_size, "cameras": args.cameras.split(","), "seed": 0,
        "policy": "learner",
    }  # fmt: skip
    settings = load_settings(None, bridge=bridge_over).bridge
    bridge = build_bridge(settings)
    rec = Recorder()
    slot = bridge.policy
    assert isinstance(slot, LearnerPolicySlot)
    slot._loader = rec.loader  # measure the loads the slot does
    record = bridge.timing.record

    def timed(lateness_s: float, work_s: float, skipped: int) -> None:
        rec.ticks.append((time.monotonic(), lateness_s * 1e3, work_s * 1e3))
        record(lateness_s, work_s, skipped)

    bridge.timing.record = timed
    return rec, bridge, settings


def phase_stats(rows: list[tuple[float, float, float]], period_ms: float) -> dict[str, Any]:
    """Tick count, lateness and work percentiles (ms) and ticks over the period."""
    if not rows:
        return {"ticks": 0}
    late = np.array([r[1] for r in rows])
    work = np.array([r[2] for r in rows])
    return {
        "ticks": len(rows),
        "lateness_p50_ms": round(float(np.percentile(late, 50)), 3),
        "lateness_p99_ms": round(float(np.percentile(late, 99)), 3),
        "lateness_max_ms": round(float(late.max()), 3),
        "work_p50_ms": round(float(np.percentile(work, 50)), 3),
        "work_p99_ms": round(float(np.percentile(work, 99)), 3),
        "over_period": int((late + work > period_ms).sum()),
    }


def summary(stats: dict[str, Any]) -> str:
    if not stats["ticks"]:
        return "no ticks"
    return (
        f"ticks {stats['ticks']:4d}  lateness p50 {stats['lateness_p50_ms']:6.2f} "
        f"p99 {stats['lateness_p99_ms']:6.2f} max {stats['lateness_max_ms']:7.2f} ms  "
        f"work p50 {stats['work_p50_ms']:6.2f} p99 {stats['work_p99_ms']:6.2f} ms  "
        f"over-period {stats['over_period']}"
    )


def keep_rolling(bridge_settings: BridgeSettings, stop: threading.Event) -> None:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(bridge_settings.cmd_endpoint)
    seq = 0
    while not stop.is_set():
        for body in (ResetDone(), StartRollout()):
            seq += 1
            wire.send(sock, Command(seq=seq, body=body))
            if sock.poll(1000):
                sock.recv_multipart()
        stop.wait(1.0)
    sock.close(0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    p.add_argument("--every", type=float, default=1.0, help="seconds between new bundles")
    p.add_argument("--profile", default="cpu", help="learner profile: cpu, state or pixel")
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--cameras", default="front,wrist")
    p.add_argument("--json", action="store_true", help="print JSON lines only")
    p.add_argument("--publish", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--profile-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    logging.disable(logging.WARNING)  # the figures are the output
    if args.publish:
        return publisher(args)
    profile = REPO / "learner" / "profiles" / f"{args.profile}.toml"
    weights_ep = free_endpoint()
    rec, bridge, settings = run_bridge(args, weights_ep)
    obs_spec = bridge.backend.observation_spec
    pixels = args.profile == "pixel"
    cams = sorted(obs_spec.cameras) if pixels else []
    spec = {
        "state_dim": obs_spec.state_dim, "action_dim": 7, "raw_state_dim": obs_spec.state_dim,
        "cameras": cams, "image_shape": list(obs_spec.cameras[cams[0]]) if cams else None,
    }  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, __file__, "--publish", weights_ep, "--spec", json.dumps(spec),
         "--profile-file", str(profile)],
        stdin=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    stop = threading.Event()
    times: list[float] = []

    def drive() -> None:
        try:
            times.extend(run_phases(args, child, bridge, settings, stop))
        finally:
            stop.set()

    bridge.start()
    threading.Thread(target=drive, daemon=True).start()
    try:
        bridge.run(stop)  # the renderer belongs to this thread
    finally:
        bridge.close()
        if child.stdin is not None:
            child.stdin.write("quit\n")
            child.stdin.close()
        child.wait(30)
    report(args, rec, times, bridge)
    return 0


def run_phases(
    args: argparse.Namespace, child: subprocess.Popen[str], bridge: Bridge,
    settings: BridgeSettings, stop: threading.Event,
) -> tuple[float, float, float]:  # fmt: skip
    """First weights, then a phase without new bundles and a phase with one every ``every`` s."""
    assert child.stdin is not None
    time.sleep(3.0)
    child.stdin.write("go\n")
    child.stdin.flush()
    deadline = time.monotonic() + 120
    while bridge.policy.version is None and time.monotonic() < deadline:
        time.sleep(0.1)
    threading.Thread(target=keep_rolling, args=(settings, stop), daemon=True).start()
    time.sleep(2.0)
    t0 = time.monotonic()
    time.sleep(args.seconds)
    t1 = time.monotonic()
    while time.monotonic() - t1 < args.seconds:
        child.stdin.write("go\n")
        child.stdin.flush()
        time.sleep(args.every)
    t2 = time.monotonic()
    time.sleep(1.0)
    return t0, t1, t2


def report(args: argparse.Namespace, rec: Recorder, times: list[float], bridge: Bridge) -> None:
    t0, t1, t2 = times
    period = 1000.0 / args.rate
    loads = [(a, b) for a, b in rec.loads if t1 <= a <= t2]
    during = [r for r in rec.ticks if any(a <= r[0] <= b + period / 1000 for a, b in loads)]
    load_ms = np.array([(b - a) * 1e3 for a, b in loads]) if loads else np.zeros(1)
    if not args.json:
        print(f"weights swap benchmark: sim:lift, cameras {args.cameras} at {args.image_size}px, "
              f"{args.rate:g} Hz, profile {args.profile}, policy acting every tick")  # fmt: skip
    phases = {
        "without_swaps": [r for r in rec.ticks if t0 <= r[0] < t1],
        "with_swaps": [r for r in rec.ticks if t1 <= r[0] < t2],
        "while_loading": during,
    }
    for name, rows in phases.items():
        stats = phase_stats(rows, period)
        label = name.replace("_", " ")
        emit(args.json, {"phase": name, **stats}, f"  {label:<14}: {summary(stats)}")
    swaps = {
        "phase": "swaps", "swaps": len(loads), "every_s": args.every, "profile": args.profile,
        "load_p50_ms": round(float(np.percentile(load_ms, 50)), 3),
        "load_max_ms": round(float(load_ms.max()), 3),
        "final_version": bridge.policy.version, "lag": bridge.policy.lag,
    }  # fmt: skip
    text = (
        f"  swaps {len(loads)} (every {args.every:g} s), load time p50 "
        f"{swaps['load_p50_ms']:.0f} ms max {swaps['load_max_ms']:.0f} ms; "
        f"final version {bridge.policy.version}, lag {bridge.policy.lag}"
    )
    emit(args.json, swaps, text)


def emit(as_json: bool, record: dict[str, Any], text: str) -> None:
    print(json.dumps(record) if as_json else text, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
