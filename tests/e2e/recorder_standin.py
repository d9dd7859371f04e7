"""Stand-in for the server's recorder in the learner fault test: bridge steps -> episode store.

Used only when ``server.recorder`` (the real recorder, which also needs the
database) is not importable in this checkout. It writes the same episode format
to ``<data_dir>/episodes`` with the learner's ``IngestLog`` writer, flushing
every 0.2 s. Run: ``python tests/e2e/recorder_standin.py DATA_DIR ENDPOINT``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import zmq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from learner.service.sources import IngestLog  # noqa: E402
from tandem.messages import EpisodeEvent, StepRecord  # noqa: E402
from tandem.wire import WireError, decode  # noqa: E402


def main() -> int:
    data_dir, endpoint = Path(sys.argv[1]), sys.argv[2]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sock = zmq.Context.instance().socket(zmq.SUB)
    for topic in (b"step", b"episode"):
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.connect(endpoint)
    log = IngestLog(data_dir / "episodes", 0.2)
    while not stop.is_set():
        if not sock.poll(100):
            log.flush()
            continue
        try:
            decoded = decode(sock.recv_multipart())
        except WireError:
            continue
        msg = decoded.msg
        if isinstance(msg, StepRecord):
            log.on_step(msg, decoded.images())
        elif isinstance(msg, EpisodeEvent) and msg.event == "end":
            log.on_end(msg, decoded.images())
    log.close()
    sock.close(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
