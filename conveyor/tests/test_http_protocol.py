"""``JsonErrorProtocol`` in a real uvicorn server, spoken to over raw sockets: a request the
parser rejects gets the JSON error object and a closed connection; a good one still reaches the
app, on a connection that stays open."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from conveyor.http_protocol import JsonErrorProtocol


async def _app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = json.dumps({"path": scope["path"]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = uvicorn.Config(_app, host="127.0.0.1", port=free, http=JsonErrorProtocol,
                            lifespan="off", log_level="error", access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield free
    server.should_exit = True
    thread.join(timeout=10)


def _exchange(port: int, raw: bytes) -> tuple[bytes, bool]:
    """Send ``raw``; return what came back within a second and whether the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        conn.settimeout(1)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except TimeoutError:
            return data, False
        return data, True


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", "method"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad\x01Header: 1\r\n\r\n", "header"),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: ten\r\n\r\n", "content-length"),
    ],
)
def test_a_request_the_parser_rejects_gets_a_json_400_and_a_closed_connection(
    port: int, raw: bytes, reason: str
) -> None:
    data, closed = _exchange(port, raw)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("not a valid HTTP/1.1 request: ")
    assert reason in error["message"].lower()
    assert closed


def test_a_good_request_still_reaches_the_app(port: int) -> None:
    data, closed = _exchange(port, b"GET /fine HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(data.partition(b"\r\n\r\n")[2]) == {"path": "/fine"}
    assert not closed  # keep-alive as before
