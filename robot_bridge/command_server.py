"""The bridge's command socket: a ROUTER drained within a per-tick budget from inside the tick.

Clients use DEALER (no empty delimiter) or REQ (empty delimiter); each gets
one ``CommandReply`` per ``Command``. Undecodable input is answered with a
refusal naming the problem and never reaches the mode machine.

A flood must not stall the loop, nor delay an e-stop (docs/bridge.md, "Command
budget"): ZMQ drops any frame over ``MAX_MSG_BYTES`` (and the peer that sent it);
each tick takes at most ``Budget.recv`` messages off the socket, reads at most
``MAX_PARTS`` parts of any message (the rest are skipped, over later ticks if need
be), and decodes at most ``Budget.decode`` messages and ``Budget.decode_bytes`` header
bytes, each phase within its time. E-stops are picked out of what was received by a
cheap byte test and decoded first; the messages over the budget are shed, answered
with one pre-encoded refusal. ROUTER queues fairly across peers, so a flooding peer
cannot keep another peer's e-stop off the socket.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import zmq

from tandem import security, wire
from tandem.messages import Command, CommandReply
from tandem.messages.commands import MAX_COMMAND_HEADER_BYTES

log = logging.getLogger(__name__)
MAX_MSG_BYTES = wire.SMALL_MSG_BYTES  # ZMQ_MAXMSGSIZE: no frame of a command comes near it
MAX_PARTS = 5  # routing id, REQ delimiter, topic, header, and one to tell "too many"
RCV_HWM = 256  # messages queued per peer
_ESTOP = b'"estop"'


@dataclass(frozen=True)
class Budget:
    """What one tick may spend on commands."""

    recv: int = 500  # messages taken off the socket
    recv_time_s: float = 0.010  # spent taking them off (and skipping over-long ones)
    decode: int = 64  # messages decoded and answered in full
    decode_bytes: int = 256 * 1024  # bytes of those messages
    decode_time_s: float = 0.005  # spent decoding them (e-stops are decoded regardless)


@dataclass
class Incoming:
    """One received command (``command``) or the reason it could not be decoded (``error``).

    ``superseded``: a ``clear_estop`` that arrived before an e-stop handled in the same
    tick (the e-stop went first, so the clear must not undo it).
    """

    envelope: list[bytes]
    command: Command | None
    error: str = ""
    superseded: bool = False


@dataclass
class Polled:
    """One tick's commands: to answer in this order, and the envelopes of those shed."""

    incoming: list[Incoming]
    shed: list[list[bytes]]


class CommandServer:
    def __init__(
        self, endpoint: str, context: zmq.Context, hwm: int = 1000, budget: Budget | None = None
    ) -> None:
        self.budget = budget or Budget()
        self._sock = context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.RCVHWM, RCV_HWM)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_MSG_BYTES)
        self.endpoint: str = security.bind(self._sock, endpoint)
        self._skipping = False  # inside an over-long message, its rest still unread
        self.received = 0
        self.malformed = 0
        self.shed = 0
        self.shed_ticks = 0
        self.dropped_replies = 0

    def poll(self) -> Polled:
        """The commands waiting now, within the budget, e-stops first; never blocks."""
        deadline = time.perf_counter() + self.budget.recv_time_s
        raw: list[list[bytes]] = []
        while len(raw) < self.budget.recv and time.perf_counter() < deadline:
            parts = self._recv(deadline)
            if parts is None:
                break
            raw.append(parts)
        self.received += len(raw)
        estop = [_looks_like_estop(parts) for parts in raw]
        order = sorted(range(len(raw)), key=lambda i: not estop[i])
        return self._decode_within(raw, order, estop)

    def _decode_within(self, raw: list[list[bytes]], order: list[int], estop: list[bool]) -> Polled:
        b = self.budget
        deadline = time.perf_counter() + b.decode_time_s
        taken: list[tuple[int, Incoming]] = []
        shed: list[list[bytes]] = []
        nbytes = 0
        for i in order:
            nbytes += sum(len(p) for p in raw[i])
            over = nbytes > b.decode_bytes or time.perf_counter() >= deadline
            if len(taken) >= b.decode or (over and not estop[i]):
                shed.append(_split(raw[i])[0])
                continue
            taken.append((i, self._decode(raw[i])))
        self._count_shed(len(shed))
        _mark_superseded(taken)
        return Polled([inc for _, inc in taken], shed)

    def _recv(self, deadline: float) -> list[bytes] | None:
        """One message (at most ``MAX_PARTS`` parts), or None when none is waiting."""
        if self._skipping and not self._skip(deadline):
            return None
        try:
            parts = [self._sock.recv(zmq.NOBLOCK)]
        except zmq.Again:
            return None
        while self._sock.rcvmore:  # a message arrives whole: its parts never block
            if len(parts) == MAX_PARTS:
                self._skipping = True
                self._skip(deadline)
                break
            parts.append(self._sock.recv(zmq.NOBLOCK))
        return parts

    def _skip(self, deadline: float) -> bool:
        """Discard the rest of an over-long message; False when time ran out first."""
        while self._sock.rcvmore:
            for _ in range(256):
                self._sock.recv(zmq.NOBLOCK)
                if not self._sock.rcvmore:
                    break
            if time.perf_counter() >= deadline:
                return not self._sock.rcvmore
        self._skipping = False
        return True

    def _decode(self, parts: list[bytes]) -> Incoming:
        envelope, body = _split(parts)
        try:
            if len(parts) == MAX_PARTS:
                raise wire.WireError("too many frames: a command has a topic and a header only")
            decoded = wire.decode(body, expect=Command)
        except wire.WireError as exc:
            self.malformed += 1
            if _worth_logging(self.malformed):
                log.warning("malformed command refused (%d so far): %s", self.malformed, exc)
            return Incoming(envelope, None, str(exc))
        assert isinstance(decoded.msg, Command)
        return Incoming(envelope, decoded.msg)

    def _count_shed(self, n: int) -> None:
        if not n:
            return
        self.shed += n
        self.shed_ticks += 1
        if _worth_logging(self.shed_ticks):
            log.warning("command budget exceeded: %d commands shed (%d so far)", n, self.shed)

    def reply(self, envelope: list[bytes], reply: CommandReply) -> None:
        """Answer without blocking; a reply to a vanished or slow client is dropped."""
        self.reply_parts(envelope, wire.encode(reply))

    def reply_parts(self, envelope: list[bytes], parts: list[bytes]) -> None:
        """Send an already encoded reply (one encoding answers every shed command)."""
        try:
            self._sock.send_multipart(envelope + parts, flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self.dropped_replies += 1
            log.debug("reply dropped: %s", exc)

    def close(self) -> None:
        self._sock.close(linger=0)


def _looks_like_estop(parts: list[bytes]) -> bool:
    """A cheap byte test: could this be an e-stop command? (Decoding tells for sure.)"""
    body = _split(parts)[1]
    return (
        len(body) == 2
        and body[0] == Command.TOPIC.encode()
        and len(body[1]) <= MAX_COMMAND_HEADER_BYTES
        and _ESTOP in body[1]
    )


def _mark_superseded(taken: list[tuple[int, Incoming]]) -> None:
    """A clear_estop received before an e-stop of the same batch must not undo it."""
    estops = [i for i, inc in taken if _kind(inc) == "estop"]
    if not estops:
        return
    for i, inc in taken:
        inc.superseded = _kind(inc) == "clear_estop" and i < max(estops)


def _kind(incoming: Incoming) -> str | None:
    return None if incoming.command is None else incoming.command.body.type


def _worth_logging(count: int) -> bool:
    """Log the first few of a kind, then one in a hundred (a flood must not stall the loop)."""
    return count <= 10 or count % 100 == 0


def _split(parts: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    if len(parts) > 1 and parts[1] == b"":
        return parts[:2], parts[2:]
    return parts[:1], parts[1:]
