"""The command socket's per-tick budget: e-stops first, the excess shed, long messages skipped."""

from __future__ import annotations

import time

import zmq

from robot_bridge.command_server import MAX_MSG_BYTES, Budget, CommandServer, Polled
from tandem import wire
from tandem.messages import ClearEStop, Command, EStop, Ping
from tests.robot_bridge.conftest import endpoint


def send_all(ctx: zmq.Context, server: CommandServer, batch: list[list[bytes]]) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    for parts in batch:
        sock.send_multipart(parts)
    return sock


def poll_until(server: CommandServer, count: int) -> list[Polled]:
    polls: list[Polled] = []
    deadline = time.monotonic() + 5.0
    while sum(len(p.incoming) + len(p.shed) for p in polls) < count:
        assert time.monotonic() < deadline, "commands did not arrive"
        polls.append(server.poll())
        time.sleep(0.02)
    return polls


def cmd(body: object) -> list[bytes]:
    return wire.encode(Command(body=body))  # type: ignore[arg-type]


def test_estop_is_handled_first_and_an_earlier_clear_cannot_undo_it(ctx) -> None:
    server = CommandServer(endpoint(), ctx)
    batch = [cmd(ClearEStop()), *[cmd(Ping()) for _ in range(20)], cmd(EStop())]
    sock = send_all(ctx, server, batch)
    time.sleep(0.3)  # all of it waits in the socket, as after a slow tick
    polled = server.poll()
    kinds = [i.command.body.type for i in polled.incoming if i.command is not None]
    assert kinds[0] == "estop" and len(kinds) == 22
    clear = next(i for i in polled.incoming if i.command and i.command.body.type == "clear_estop")
    assert clear.superseded
    sock.close()
    server.close()


def test_commands_over_the_budget_are_shed_not_decoded(ctx) -> None:
    server = CommandServer(endpoint(), ctx, budget=Budget(decode=10))
    sock = send_all(ctx, server, [cmd(Ping()) for _ in range(50)] + [cmd(EStop())])
    time.sleep(0.3)
    polled = server.poll()
    assert len(polled.incoming) == 10 and len(polled.shed) == 41
    assert polled.incoming[0].command is not None
    assert polled.incoming[0].command.body.type == "estop"  # never shed
    sock.close()
    server.close()


def test_long_and_oversized_messages_cost_little(ctx) -> None:
    server = CommandServer(endpoint(), ctx)
    big = send_all(ctx, server, [[b"cmd", b"x" * (MAX_MSG_BYTES + 1)]])
    time.sleep(0.1)
    sock = send_all(ctx, server, [[b"cmd", b"{}", *[b""] * 20000], cmd(Ping())])
    time.sleep(0.3)
    polls = poll_until(server, 2)  # the oversized one never arrives: ZMQ drops it
    big.close()
    worst = max(server.budget.recv_time_s, server.budget.decode_time_s)
    assert len(polls) >= 2, "20000 parts take more than one tick's budget to skip"
    got = [i for p in polls for i in p.incoming]
    assert "too many frames" in got[0].error and got[1].command is not None
    t0 = time.perf_counter()
    server.poll()
    assert time.perf_counter() - t0 < 2 * worst + 0.01
    sock.close()
    server.close()
