"""``tandem up``: the server, one bridge per robot and the learner on this machine."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

from tandem import ports, security
from tandem.cli.supervisor import ChildSpec, Supervisor
from tandem.cli.util import add_config_argument, settings_from_args
from tandem.logs import setup_logging
from tandem.settings import Settings, save_role_settings

log = logging.getLogger(__name__)

EXIT_USAGE = 2
EXIT_PORT_TAKEN = 3
PORTS_PER_ROBOT = 10  # robot i uses the bridge ports shifted by 10 * i


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser(
        "up",
        help="run the server, a sim bridge per robot and the learner, supervised",
        description="Start Tandem on one machine: server + dashboard, one bridge per --robot, "
        "and the learner; restart crashed children; Ctrl-C stops everything cleanly.",
    )
    add_config_argument(up)
    up.add_argument(
        "--robot",
        action="append",
        metavar="SPEC",
        help="robot backend (sim:lift, sim:drawer, mock, zmq://HOST:PORT); repeat for several "
        "robots (default: the bridge.robot setting)",
    )
    up.add_argument("--no-learner", action="store_true", help="do not start the learner")
    up.add_argument(
        "--play", metavar="PATH",
        help="let the robot play: the bridges act with this explorer (RUN/explorer.safetensors "
        "of tandem pretrain) instead of the learner's policy; sim and mock robots only unless "
        "bridge.allow_play_on_real_arm",
    )  # fmt: skip
    up.set_defaults(func=_up)


def shift_port(endpoint: str, offset: int) -> str:
    """``tcp://host:5555`` shifted by ``offset`` ports; other transports unchanged."""
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp" or parts.port is None:
        return endpoint
    netloc = f"{parts.hostname}:{parts.port + offset}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def plan(
    settings: Settings, robots: list[str], *, learner: bool = True,
    config_file: str | None = None, play: Play | None = None,
) -> list[ChildSpec]:  # fmt: skip
    """The children of ``tandem up``; endpoints are wired through environment settings.

    Every child reads the same settings (and config file); the bridge of robot
    ``i`` gets its ports shifted by ``10 * i`` and the server and learner get
    the list of all bridges. ``play``: the bridges act with that explorer (``play_setup``).
    """
    bridge = settings.bridge
    pubs = [shift_port(bridge.pub_endpoint, PORTS_PER_ROBOT * i) for i in range(len(robots))]
    cmds = [shift_port(bridge.cmd_endpoint, PORTS_PER_ROBOT * i) for i in range(len(robots))]
    shared = {"TANDEM_DATA_DIR": str(settings.data_dir), "TANDEM_LOG_LEVEL": settings.log_level}
    if config_file is not None:
        shared["TANDEM_CONFIG"] = config_file
    base = [sys.executable, "-m", "tandem"]
    specs = [
        ChildSpec(
            "server",
            [*base, "server"],
            {
                **shared,
                "TANDEM_SERVER__BRIDGES": json.dumps(pubs),
                "TANDEM_SERVER__BRIDGE_CMD_ENDPOINTS": json.dumps(cmds),
                "TANDEM_SERVER__LEARNER_METRICS_ENDPOINT": settings.learner.metrics_endpoint,
            },
            stop_group=1,
        )
    ]
    for i, robot in enumerate(robots):
        env = {
            **shared,
            "TANDEM_BRIDGE__ROBOT": robot,
            "TANDEM_BRIDGE__ROBOT_ID": bridge.robot_id if len(robots) == 1 else f"robot{i}",
            "TANDEM_BRIDGE__PUB_ENDPOINT": pubs[i],
            "TANDEM_BRIDGE__CMD_ENDPOINT": cmds[i],
            "TANDEM_BRIDGE__WEIGHTS_ENDPOINT": settings.learner.weights_endpoint,
        }
        role = "bridge" if len(robots) == 1 else f"bridge{i}"
        if play is not None:
            env.update(play.bridge_env)
        argv = [*base, "bridge", "--robot", robot, *_policy_args(learner, play)]
        # Bridges stop first: their last steps and the end of an open episode
        # still reach the recorder and the learner, which stop after them.
        specs.append(ChildSpec(role, argv, env, stop_group=0))
    if learner:
        env = {
            **shared,
            "TANDEM_LEARNER__BRIDGES": json.dumps(pubs),
            # One write per step: the learner reads the server recorder's store (resume,
            # backfill) instead of logging every step a second time.
            "TANDEM_LEARNER_SERVICE__RECORDER_STORE": str(Path(settings.data_dir) / "episodes"),
        }
        # --resume is always safe: without a checkpoint the learner starts a new run.
        specs.append(ChildSpec("learner", [*base, "learner", "--resume"], env, stop_group=1))
    return specs


def _policy_args(learner: bool, play: Play | None) -> list[str]:
    if play is not None:
        return ["--policy", "play", "--play-bundle", play.bundle]
    return ["--policy", "learner" if learner else "expert"]


@dataclass(frozen=True)
class Play:
    """``tandem up --play``: the explorer bundle and the bridge settings it needs."""

    bundle: str
    bridge_env: dict[str, str]


def play_setup(settings: Settings, robots: list[str], bundle: str) -> Play:
    """Check ``tandem up --play`` once, before any child starts (ValueError: why not), and
    give the bridges the explorer's cameras at the size it was trained on."""
    if not Path(bundle).is_file():
        raise ValueError(f"--play {bundle}: no such file (tandem pretrain writes "
                         "RUN/explorer.safetensors)")  # fmt: skip
    from robot_bridge.factory import simulated

    real = [r for r in robots if not simulated(r)]
    if real and not settings.bridge.allow_play_on_real_arm:
        raise ValueError(f"--play is refused on {', '.join(real)}: set "
                         "bridge.allow_play_on_real_arm = true to let the explorer drive a "
                         "real arm")  # fmt: skip
    from learner.acting import read_bundle_config  # torch: only when asked to play

    try:
        spec = read_bundle_config(bundle)["spec"]
    except ValueError as exc:
        raise ValueError(f"--play {bundle}: {exc}") from None
    env: dict[str, str] = {}
    if spec.get("cameras"):
        env["TANDEM_BRIDGE__CAMERAS"] = json.dumps(list(spec["cameras"]))
        env["TANDEM_BRIDGE__IMAGE_SIZE"] = str(spec["image_shape"][0])
    return Play(str(Path(bundle).resolve()), env)


def ensure_keys(settings: Settings) -> None:
    """Make the deployment's keys when there are none: every child uses them, on loopback too."""
    folder = security.keys_dir(settings)
    if security.load_keys(folder) is None:
        security.generate(folder)
        log.info("generated ZMQ keys in %s (tandem keys)", folder)


def planned_ports(settings: Settings, robots: list[str], *, learner: bool) -> list[ports.Port]:
    """Every TCP port the children of ``plan`` will bind."""
    endpoints = [
        (shift_port(getattr(settings.bridge, f"{kind}_endpoint"), PORTS_PER_ROBOT * i),
         f"bridge {i} {kind}")
        for i in range(len(robots)) for kind in ("pub", "cmd")
    ]  # fmt: skip
    if learner:
        endpoints += [(settings.learner.weights_endpoint, "learner weights"),
                      (settings.learner.metrics_endpoint, "learner metrics")]  # fmt: skip
    found = (ports.from_endpoint(endpoint, what) for endpoint, what in endpoints)
    server = ports.Port(settings.server.host, settings.server.port, "server HTTP")
    return [server, *(p for p in found if p is not None)]


def _ports_taken(settings: Settings, robots: list[str], *, learner: bool) -> bool:
    taken = ports.busy(planned_ports(settings, robots, learner=learner))
    for b in taken:
        log.error("cannot start: %s", b)
    if taken:
        log.error("stop that program, or give Tandem other ports (server.port, "
                  "bridge.pub_endpoint / cmd_endpoint, learner.*_endpoint)")  # fmt: skip
    return bool(taken)


def _up(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    setup_logging("up", settings.log_level, settings.data_dir / "logs" / "up.log")
    robots = args.robot or [settings.bridge.robot]
    try:
        play = None if args.play is None else play_setup(settings, robots, args.play)
    except ValueError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_USAGE
    if _ports_taken(settings, robots, learner=not args.no_learner):
        return EXIT_PORT_TAKEN
    save_role_settings(settings, "up")  # each child saves its own (settings/<role>.json)
    ensure_keys(settings)
    specs = plan(settings, robots, learner=not args.no_learner, config_file=args.config,
                 play=play)  # fmt: skip
    supervisor = Supervisor(specs, settings.data_dir / "logs", settings.data_dir / "processes.json")

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d; stopping every process", signum)
        supervisor.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server = settings.server
    log.info(
        "dashboard: http://%s:%d/ (the server prints the one-time login link)",
        server.host,
        server.port,
    )
    supervisor.run()
    return 0
