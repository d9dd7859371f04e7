"""``tandem bridge`` (the control loop) and ``tandem arm-server`` (an arm behind ZeroMQ)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

import zmq

from tandem import security
from tandem.cli.util import add_config_argument
from tandem.logs import setup_logging
from tandem.settings import Settings, load_settings, save_role_settings

log = logging.getLogger(__name__)
EXIT_START_ERROR = 3


def register(sub: argparse._SubParsersAction) -> None:
    bridge = sub.add_parser("bridge", help="run the robot bridge (fixed-rate control loop)")
    bridge.add_argument("--robot", help="sim:lift, sim:drawer, mock or zmq://HOST:PORT")
    bridge.add_argument(
        "--cameras",
        help="comma-separated camera names of the backend and extra NAME=opencv:SOURCE cameras, "
        "e.g. front,wrist,side=opencv:0",
    )
    bridge.add_argument(
        "--policy", choices=["none", "expert", "learner", "play"],
        help="policy in the slot at start (play: the explorer of --play-bundle)",
    )  # fmt: skip
    bridge.add_argument(
        "--play-bundle", metavar="PATH",
        help="explorer policy for --policy play: RUN/explorer.safetensors of tandem pretrain",
    )  # fmt: skip
    bridge.add_argument(
        "--allow-play-on-real-arm", action="store_true", default=None,
        help="let --policy play drive a robot reached over ZeroMQ (refused without it)",
    )  # fmt: skip
    bridge.add_argument("--pub", help="PUB endpoint (steps, status, frames)")
    bridge.add_argument("--cmd", help="command endpoint (ROUTER)")
    bridge.add_argument("--rate", type=float, help="control rate in Hz")
    bridge.add_argument(
        "--realtime", action=argparse.BooleanOptionalAction, default=None,
        help="ask for SCHED_FIFO priority (warns and continues when not permitted)",
    )  # fmt: skip
    add_config_argument(bridge)
    bridge.set_defaults(func=_bridge)

    arm = sub.add_parser("arm-server", help="host an arm driver behind the ZeroMQ arm protocol")
    arm.add_argument("--driver", help="mock, sim:lift or sim:drawer (default: bridge.robot)")
    arm.add_argument("--bind", help="endpoint to bind (default: bridge.arm_bind)")
    arm.add_argument("--timeout", type=float, help="stop the arm after this silence (seconds)")
    add_config_argument(arm)
    arm.set_defaults(func=_arm_server)


def _cameras(spec: str) -> dict[str, Any]:
    names, sources = [], {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, sep, source = item.partition("=")
        if sep:
            sources[name] = source
        else:
            names.append(name)
    return {"cameras": names, "camera_sources": sources}


def _bridge_settings(args: argparse.Namespace) -> Settings:
    over: dict[str, Any] = {
        "robot": args.robot, "policy": args.policy, "pub_endpoint": args.pub,
        "cmd_endpoint": args.cmd, "rate_hz": args.rate, "realtime": args.realtime,
        "play_bundle": args.play_bundle, "allow_play_on_real_arm": args.allow_play_on_real_arm,
    }  # fmt: skip
    if args.cameras is not None:
        over.update(_cameras(args.cameras))
    return load_settings(args.config, bridge={k: v for k, v in over.items() if v is not None})


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _bridge(args: argparse.Namespace) -> int:
    settings = _bridge_settings(args)
    setup_logging("bridge", settings.log_level)
    save_role_settings(settings, f"bridge-{settings.bridge.robot_id}")
    from robot_bridge.app import build_bridge
    from robot_bridge.driver import DriverError
    from robot_bridge.pacer import enable_realtime
    from robot_bridge.publisher import CLOSE_LINGER_S

    if settings.bridge.realtime:
        # Before anything starts threads (renderer workers, ZMQ I/O): they inherit it.
        enable_realtime(settings.bridge.realtime_priority)
    try:
        security.configure(settings)
        bridge = build_bridge(settings.bridge)
        bridge.start()
    except (ValueError, DriverError, zmq.ZMQError) as exc:
        log.error("cannot start the bridge: %s", exc)
        return EXIT_START_ERROR
    stop = _stop_on_signals()
    try:
        bridge.run(stop)
    finally:
        bridge.close()
        # Flush what is still queued (the end of the open episode) before the process
        # exits: at exit pyzmq does not terminate the context, so the I/O thread dies.
        zmq.Context.instance().destroy(linger=int(CLOSE_LINGER_S * 1000))
    return 0


def _arm_server(args: argparse.Namespace) -> int:
    over = {"arm_bind": args.bind, "arm_timeout_s": args.timeout}
    settings = load_settings(args.config, bridge={k: v for k, v in over.items() if v is not None})
    setup_logging("arm-server", settings.log_level)
    from robot_bridge.arm_server import ArmServer, make_driver
    from robot_bridge.driver import DriverError

    try:
        security.configure(settings)
        driver = make_driver(args.driver or settings.bridge.robot, settings.bridge)
        server = ArmServer(driver, settings.bridge.arm_bind)
    except (ValueError, DriverError, zmq.ZMQError) as exc:
        log.error("cannot start the arm-server: %s", exc)
        return EXIT_START_ERROR
    server.serve(_stop_on_signals())
    return 0
