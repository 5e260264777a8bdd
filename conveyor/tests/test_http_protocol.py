"""``JsonErrorProtocol`` in a real uvicorn server, spoken to over raw sockets: a request the
parser rejects gets the JSON error object and a closed connection; a good one still reaches the
app, on a connection that stays open."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.http_protocol import JsonErrorProtocol
from conveyor.tests.served import serve_in_thread


async def _app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = json.dumps({"path": scope["path"]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BrokenProtocol(JsonErrorProtocol):
    """Its own code fails on one path, as a bug in a parser callback would."""

    def on_url(self, url: bytes) -> None:
        if url.startswith(b"/broken"):
            raise RuntimeError("a bug, not the client's fault")
        super().on_url(url)


def _serving(protocol: type[JsonErrorProtocol]) -> contextlib.AbstractContextManager[int]:
    """A uvicorn server speaking ``protocol`` on a free port, in a thread."""
    return serve_in_thread(_app, http=protocol, lifespan="off", log_level="error",
                           access_log=False)  # fmt: skip


@pytest.fixture
def port() -> Iterator[int]:
    with _serving(JsonErrorProtocol) as free:
        yield free


def _read_until_closed(conn: socket.socket) -> tuple[bytes, bool]:
    """What comes back until the server closes (True) or a second passes (False)."""
    conn.settimeout(1)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except TimeoutError:
        return data, False
    except OSError:  # reset by the server, which closed with our bytes still unread
        return data, True
    return data, True


def _exchange(port: int, raw: bytes) -> tuple[bytes, bool]:
    """Send ``raw``; return what came back and whether the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        return _read_until_closed(conn)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", "method"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad\x01Header: 1\r\n\r\n", "header"),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: ten\r\n\r\n", "content-length"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", "url is too long"),
    ],
)
def test_a_request_the_parser_rejects_gets_a_json_400_and_a_closed_connection(
    port: int, raw: bytes, reason: str
) -> None:
    data, closed = _exchange(port, raw)
    status_line, headers, body = _parse(data)
    assert status_line == "HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("not a valid HTTP/1.1 request: ")
    assert reason in error["message"].lower()
    assert closed


def _parse(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], headers, body


def test_a_failure_of_the_protocol_itself_is_a_json_500_not_the_clients_400() -> None:
    with _serving(BrokenProtocol) as port:
        data, closed = _exchange(port, b"GET /broken HTTP/1.1\r\nHost: t\r\n\r\n")
    status_line, headers, body = _parse(data)
    assert status_line == "HTTP/1.1 500 Internal Server Error"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "internal"
    assert "bug" not in body.decode()  # logged, never sent
    assert closed


def _send_slowly(port: int, pieces: list[bytes]) -> tuple[bytes, bool]:
    """Send ``pieces`` a few milliseconds apart (each its own read at the server), then read
    until the server closes or a second passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        for piece in pieces:
            try:
                conn.sendall(piece)
            except OSError:  # the server refused and closed while we were still sending
                break
            time.sleep(0.005)
        return _read_until_closed(conn)


def test_a_head_that_keeps_growing_is_refused_431(port: int) -> None:
    pieces = [b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: "] + [
        b"a" * 16384
    ] * 64  # up to 1 MiB: refused long before
    data, closed = _send_slowly(port, pieces)
    status_line, headers, body = _parse(data)
    assert status_line == "HTTP/1.1 431 Request Header Fields Too Large"
    error = json.loads(body)["error"]
    assert error == {"code": "invalid_request", "message": error["message"]}
    assert "64 KiB" in error["message"]
    assert headers["connection"] == "close"
    assert closed


def test_a_large_body_after_a_small_head_is_not_counted_as_head(port: int) -> None:
    body = b"x" * 300_000
    head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
    pieces = [head + body[:1000]] + [body[i : i + 16384] for i in range(1000, len(body), 16384)]
    data, _ = _send_slowly(port, pieces)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(_parse(data)[2]) == {"path": "/upload"}


def test_a_good_request_still_reaches_the_app(port: int) -> None:
    data, closed = _exchange(port, b"GET /fine HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(data.partition(b"\r\n\r\n")[2]) == {"path": "/fine"}
    assert not closed  # keep-alive as before


def _one_request(conn: socket.socket, path: bytes) -> bytes:
    """Send a GET for ``path`` on ``conn`` and read its whole answer (the app sends a length)."""
    conn.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def _length(data: bytes) -> int:
    head = data.partition(b"\r\n\r\n")[0].lower()
    return int(head.partition(b"content-length: ")[2].partition(b"\r\n")[0])


def test_keep_alive_closes_an_idle_connection_and_only_an_idle_one() -> None:
    """The lazy keep-alive timer: a connection idle for ``timeout_keep_alive`` after its last
    response is closed; one that answered a request since is not closed at the first timer's
    deadline but ``timeout_keep_alive`` after its own last response."""
    with (
        serve_in_thread(
            _app,
            http=JsonErrorProtocol,
            lifespan="off",
            log_level="error",
            access_log=False,
            timeout_keep_alive=1,
        ) as port,  # fmt: skip
        socket.create_connection(("127.0.0.1", port), timeout=5) as conn,
    ):
        assert _one_request(conn, b"/first").startswith(b"HTTP/1.1 200 OK\r\n")
        time.sleep(0.6)
        assert _one_request(conn, b"/second").startswith(b"HTTP/1.1 200 OK\r\n")
        time.sleep(0.7)  # past the first response's deadline, not the second's
        assert _one_request(conn, b"/third").startswith(b"HTTP/1.1 200 OK\r\n")
        answered = time.monotonic()
        conn.settimeout(3)
        assert conn.recv(1) == b""  # closed by the server, idle
        waited = time.monotonic() - answered
        assert 0.8 <= waited <= 2.0, waited
