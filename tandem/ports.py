"""Which of the TCP ports ``tandem up`` is about to bind are taken, and by whom.

Checked once before anything starts: a port held by another program would otherwise
crash-loop the process that needs it (and the server would print fresh login links
that lead nowhere, or to another instance).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Port:
    host: str
    port: int
    what: str  # e.g. "server HTTP", "bridge robot0 commands"


@dataclass(frozen=True)
class Busy:
    port: Port
    holder: str  # "pid 1234 (python3 -m http.server)" or why it is unknown

    def __str__(self) -> str:
        return f"port {self.port.port} ({self.port.what}) is in use by {self.holder}"


def from_endpoint(endpoint: str, what: str) -> Port | None:
    """``tcp://host:port`` as a port to check; other transports (and port 0) need none."""
    parts = urlsplit(endpoint)
    if parts.scheme != "tcp" or not parts.port:
        return None
    host = parts.hostname or "0.0.0.0"
    return Port("0.0.0.0" if host == "*" else host, parts.port, what)


def busy(ports: list[Port]) -> list[Busy]:
    """The ports of ``ports`` that cannot be bound now, each with its holder."""
    return [Busy(p, holder(p.port)) for p in ports if not _free(p)]


def _free(port: Port) -> bool:
    family = socket.AF_INET6 if ":" in port.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind((port.host, port.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def holder(port: int) -> str:
    """The process listening on ``port``, as far as this user may see it."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return "another process (not allowed to look it up)"
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return _describe(conn.pid)
    return "another process (it is not listening: maybe a socket still closing)"


def _describe(pid: int | None) -> str:
    import psutil

    if pid is None:
        return "a process of another user"
    try:
        command = " ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"pid {pid}"
    return f"pid {pid} ({command[:120]})"
