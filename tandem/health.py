"""Health probe: wait for one valid message of a topic on a PUB endpoint.

``python -m tandem.health status tcp://127.0.0.1:5555`` exits 0 once a bridge's
``BridgeStatus`` arrives, ``... metrics tcp://127.0.0.1:5562`` once the
learner's metrics do; 1 when none arrives in time. Containers use it as their
health check.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import zmq

from tandem import security
from tandem.messages import MESSAGE_TYPES
from tandem.settings import load_settings
from tandem.wire import MEDIA_MSG_BYTES, WireError, decode


def wait_for_message(topic: str, endpoint: str, timeout_s: float) -> bool:
    """True when a decodable ``topic`` message arrives on ``endpoint`` within the time."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MEDIA_MSG_BYTES)
    sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    security.connect(sock, endpoint)
    deadline = time.monotonic() + timeout_s
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000)):
                return False
            try:
                decode(sock.recv_multipart(), expect=MESSAGE_TYPES[topic])
                return True
            except WireError:
                continue
        return False
    finally:
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tandem.health", description=__doc__)
    parser.add_argument("topic", choices=["status", "metrics"], help="message topic to wait for")
    parser.add_argument("endpoint", help="PUB endpoint to connect to, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    args = parser.parse_args(argv)
    security.configure(load_settings())  # the keys of $TANDEM_DATA_DIR, as the service's
    ok = wait_for_message(args.topic, args.endpoint, args.timeout)
    sys.stderr.write(f"{args.topic} on {args.endpoint}: {'ok' if ok else 'nothing received'}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
