"""The bridge's command socket: a ROUTER polled with zero timeout from inside the tick.

Clients use DEALER (no empty delimiter) or REQ (empty delimiter); each gets
one ``CommandReply`` per ``Command``. Undecodable input is answered with a
refusal naming the problem and never reaches the mode machine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import zmq

from tandem import wire
from tandem.messages import Command, CommandReply

log = logging.getLogger(__name__)
MAX_PER_TICK = 200


@dataclass
class Incoming:
    """One received command (``command``) or the reason it could not be decoded (``error``)."""

    envelope: list[bytes]
    command: Command | None
    error: str = ""


class CommandServer:
    def __init__(self, endpoint: str, context: zmq.Context, hwm: int = 1000) -> None:
        self._sock = context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.RCVHWM, hwm)
        self._sock.bind(endpoint)
        self.endpoint: str = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.received = 0
        self.malformed = 0
        self.dropped_replies = 0

    def poll(self, limit: int = MAX_PER_TICK) -> list[Incoming]:
        """Every command waiting now (at most ``limit``); never blocks."""
        out: list[Incoming] = []
        while len(out) < limit:
            try:
                parts = self._sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            out.append(self._decode(parts))
        return out

    def _decode(self, parts: list[bytes]) -> Incoming:
        self.received += 1
        envelope, body = _split(parts)
        try:
            decoded = wire.decode(body, expect=Command)
        except wire.WireError as exc:
            self.malformed += 1
            if _worth_logging(self.malformed):
                log.warning("malformed command refused (%d so far): %s", self.malformed, exc)
            return Incoming(envelope, None, str(exc))
        assert isinstance(decoded.msg, Command)
        return Incoming(envelope, decoded.msg)

    def reply(self, envelope: list[bytes], reply: CommandReply) -> None:
        """Answer without blocking; a reply to a vanished or slow client is dropped."""
        try:
            self._sock.send_multipart(envelope + wire.encode(reply), flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self.dropped_replies += 1
            log.debug("reply dropped: %s", exc)

    def close(self) -> None:
        self._sock.close(linger=0)


def _worth_logging(count: int) -> bool:
    """Log the first few of a kind, then one in a hundred (a flood must not stall the loop)."""
    return count <= 10 or count % 100 == 0


def _split(parts: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    if len(parts) > 1 and parts[1] == b"":
        return parts[:2], parts[2:]
    return parts[:1], parts[1:]
