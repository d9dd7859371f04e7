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

from tandem import security
from tandem.messages import MESSAGE_TYPES
from tandem.settings import load_settings
from tandem.subscriber import Malformed, Subscriber


def wait_for_message(topic: str, endpoint: str, timeout_s: float) -> bool:
    """True when a decodable ``topic`` message arrives on ``endpoint`` within the time."""
    deadline = time.monotonic() + timeout_s
    with Subscriber(
        [endpoint], [topic], expect=MESSAGE_TYPES[topic], max_batch=1, on_malformed=_ignore
    ) as sub:
        while (left := deadline - time.monotonic()) > 0:
            if sub.poll(left):
                return True
        return False


def _ignore(bad: Malformed) -> None:
    """An undecodable message is not the one awaited; keep waiting."""


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
