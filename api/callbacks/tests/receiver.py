"""A callback receiver for tests: a real HTTP/1.1 server on a free loopback port, in threads of
its own, that records every POST and answers with the status its ``answer`` function returns.

Running in threads, it answers while the test's event loop awaits something else (a delivery
in the same process, or submits to a gateway); ``answer`` may sleep to play a slow receiver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

__all__ = ["Answer", "Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    """One POST as the receiver got it: path, headers (lower-case names), body, and the status
    it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


Answer = Callable[[str, dict[str, str], bytes], int]
"""The status to answer a POST with, from its path, headers and body."""


def _always_ok(path: str, headers: dict[str, str], body: bytes) -> int:
    return 200


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, answer: Answer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.received: list[Received] = []
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a sender that went away (a killed gateway) resets its connections."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the delivery's client pools connections
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:  # the sender died mid-request (a killed gateway): no POST
            self.close_connection = True
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        status = self.server.answer(self.path, headers, body)
        with self.server.lock:
            self.server.received.append(Received(self.path, headers, body, status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test prints what it wants itself."""


class Receiver:
    """The server; ``url(path)`` is where a callback reaches it."""

    def __init__(self, answer: Answer = _always_ok) -> None:
        self._server = _Server(answer)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        """Every POST so far, in arrival order (a copy)."""
        with self._server.lock:
            return list(self._server.received)

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
