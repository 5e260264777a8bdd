"""Loopback ports: pick a free one, or tell whether one is taken."""

from __future__ import annotations

import socket

__all__ = ["answers", "free_port", "port_in_use"]

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that nothing listens on at ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
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
