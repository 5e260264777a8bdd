"""Loopback ports: pick a free one, or tell whether one is taken."""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["answers", "ephemeral_range", "free_port", "port_in_use"]

_RANDOM = random.SystemRandom()

LOOPBACK = "127.0.0.1"


PICKED_SPAN = 12000
"""How many ports below the kernel's ephemeral range ``free_port`` picks from."""


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (Linux's default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that nothing is bound to at ``host`` right now, below the kernel's
    ephemeral range: an outgoing connection (a client of RabbitMQ or Redis) never takes it as
    its local port before the server that is given it binds it. A port the kernel hands out for
    ``bind(0)`` comes from that range, and a connection opened meanwhile can hold it.
    """
    low, _ = ephemeral_range()
    first = max(1024, low - PICKED_SPAN)
    for _ in range(200):
        port = _RANDOM.randrange(first, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: any free one
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when a server could not bind ``host:port``: something listens there (on that
    address or on every address) or holds it bound."""
    if answers(host, port, timeout=0.5):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers (uvicorn included) set SO_REUSEADDR: a port in TIME_WAIT is not "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
