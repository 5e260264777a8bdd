"""The gateway's admission as the HTTP protocol's gate (``api.edge.Admission`` in a real
``conveyor.http_server``), spoken to over raw sockets: busy refusals answered without entering
the app, keep-alive and pipelining kept intact, errors below the app in the shape of the path's
API."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from api.cors import CorsPolicy
from api.edge import Admission, Edge
from conveyor.metrics import GatewayMetrics
from conveyor.tests.served import serve_in_thread

BODY = b'{"data": "example"}'


class App:
    """The app behind the edge: answers 200 with the path; ``gate`` holds predict requests."""

    def __init__(self) -> None:
        self.calls = 0  # requests that entered the ASGI app at all (before the edge)
        self.hold = False  # while set, a request for /predict/held waits
        self.edge: Edge | None = None

    async def outer(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        assert self.edge is not None
        await self.edge(scope, receive, send)

    async def inner(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        # The test's thread clears ``hold``: a flag polled, not an event of this loop.
        while self.hold and scope["path"] == "/predict/held":  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        payload = json.dumps({"path": scope["path"], "received": len(body)}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def served() -> Iterator[tuple[App, Admission, int]]:
    app = App()
    metrics = GatewayMetrics()
    admission = Admission(0, retry_after=2, metrics=metrics)
    app.edge = Edge(app.inner, admission=admission, max_body_bytes=1 << 20, metrics=metrics)
    with serve_in_thread(app.outer, gate=admission, error_answer=admission.protocol_answer) as port:
        yield app, admission, port


def _request(path: str, *, method: str = "POST", headers: str = "", version: str = "1.1") -> bytes:
    return (
        f"{method} {path} HTTP/{version}\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n{headers}\r\n"
    ).encode() + BODY


def _read_response(conn: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response off ``conn`` (``buffer`` keeps what arrived after it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        assert chunk, "connection closed before a response"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def _connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def test_a_busy_refusal_never_enters_the_app_and_keeps_the_connection(served: Any) -> None:
    app, admission, port = served
    with _connect(port) as conn:
        buffer = bytearray()
        for n in range(3):  # the same connection, again and again: the body was consumed
            conn.sendall(_request("/predict/m", headers=f"X-Request-ID: client-{n}\r\n"))
            status, headers, body = _read_response(conn, buffer)
            assert status == 429
            assert headers["retry-after"] == "2"
            assert headers["content-type"] == "application/json"
            assert headers["x-request-id"] == f"client-{n}"
            assert "date" in headers
            assert "connection" not in headers
            assert json.loads(body)["error"]["code"] == "overloaded"
        conn.sendall(_request("/v2/models/m/infer"))
        status, headers, body = _read_response(conn, buffer)
        assert status == 429
        assert "limit of 0 requests" in json.loads(body)["error"]
        assert len(headers["x-request-id"]) == 32  # none given: a new one
    assert app.calls == 0
    assert admission.metrics is not None
    assert admission.metrics.series("predict").rejected == {"gateway_full": 3}


def test_open_paths_pass_while_busy(served: Any) -> None:
    app, _, port = served
    with _connect(port) as conn:
        buffer = bytearray()
        conn.sendall(_request("/healthz", method="GET"))
        status, _, body = _read_response(conn, buffer)
        assert status == 200
        assert json.loads(body) == {"path": "/healthz", "received": len(BODY)}
        conn.sendall(_request("/predict/m"))
        assert _read_response(conn, buffer)[0] == 429
    assert app.calls == 1


@pytest.mark.parametrize(("version", "headers"), [("1.1", "Connection: close\r\n"), ("1.0", "")])
def test_a_refusal_closes_a_connection_the_client_will_not_keep(
    served: Any, version: str, headers: str
) -> None:
    _, _, port = served
    with _connect(port) as conn:
        buffer = bytearray()
        conn.sendall(_request("/predict/m", version=version, headers=headers))
        status, response_headers, _ = _read_response(conn, buffer)
        assert status == 429
        assert response_headers["connection"] == "close"
        assert conn.recv(1024) == b""  # closed by the server


def test_pipelined_requests_are_answered_in_order(served: Any) -> None:
    app, admission, port = served
    admission.max_inflight = 1
    app.hold = True
    with _connect(port) as holder, _connect(port) as conn:
        # One request in progress on its own connection; then three pipelined on another.
        # The protocol queues requests behind one in progress on their connection, so the
        # edge answers them: health served, the two predicts refused, in the order sent.
        holder.sendall(_request("/predict/held"))
        deadline = time.monotonic() + 5
        while admission.inflight < 1:
            assert time.monotonic() < deadline, "the held request did not arrive"
            time.sleep(0.01)
        conn.sendall(
            _request("/healthz", method="GET", headers="X-Request-ID: p1\r\n")
            + _request("/predict/m", headers="X-Request-ID: p2\r\n")
            + _request("/predict/m", headers="X-Request-ID: p3\r\n")
        )
        buffer = bytearray()
        answers = [_read_response(conn, buffer) for _ in range(3)]
        assert [(s, h["x-request-id"]) for s, h, _ in answers] == [
            (200, "p1"), (429, "p2"), (429, "p3")
        ]  # fmt: skip
        app.hold = False
        status, _, body = _read_response(holder, bytearray())
        assert status == 200
        assert json.loads(body)["path"] == "/predict/held"


def test_a_response_arrives_whole_and_100_continue_still_works(served: Any) -> None:
    app, admission, port = served
    admission.max_inflight = 10
    with _connect(port) as conn:
        buffer = bytearray()
        conn.sendall(_request("/predict/m"))
        status, _, body = _read_response(conn, buffer)
        assert status == 200
        assert json.loads(body) == {"path": "/predict/m", "received": len(BODY)}
        head = (
            f"POST /predict/m HTTP/1.1\r\nHost: t\r\nContent-Length: {len(BODY)}\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()
        conn.sendall(head)
        while b"\r\n\r\n" not in buffer:
            buffer += conn.recv(1024)
        assert bytes(buffer).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        del buffer[: len(b"HTTP/1.1 100 Continue\r\n\r\n")]
        conn.sendall(BODY)
        status, _, body = _read_response(conn, buffer)
        assert status == 200
        assert json.loads(body)["received"] == len(BODY)
    assert app.calls == 2


@pytest.mark.parametrize(
    ("raw", "oip"),
    [
        (b"BREW /predict/m HTTP/1.1\r\nHost: t\r\n\r\n", False),  # not a method
        (b"POST /predict/m HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", False),
        (b"POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nBad\x01Header: 1\r\n\r\n", True),
    ],
)
def test_bytes_that_are_not_http_get_a_json_400_and_a_closed_connection(
    served: Any, raw: bytes, oip: bool
) -> None:
    app, _, port = served
    with _connect(port) as conn:
        conn.sendall(raw)
        status, headers, body = _read_response(conn, bytearray())
        assert status == 400
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        error = json.loads(body)["error"]
        message = error if oip else error["message"]
        assert message.startswith("not a valid HTTP/1.1 request: ")
        assert len(message) > len("not a valid HTTP/1.1 request: ")
        if not oip:
            assert error["code"] == "invalid_request"
        assert conn.recv(1024) == b""  # closed by the server
    assert app.calls == 0


def test_a_head_over_the_bound_is_a_431_in_the_shape_of_its_api(served: Any) -> None:
    app, _, port = served
    with _connect(port) as conn:
        conn.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: t\r\nX-Big: ")
        for _ in range(64):  # up to 1 MiB: refused long before
            time.sleep(0.005)  # each piece its own read at the server
            try:
                conn.sendall(b"a" * 16384)
            except OSError:  # refused and closed while still sending
                break
        status, headers, body = _read_response(conn, bytearray())
    assert status == 431
    assert headers["connection"] == "close"
    assert "64 KiB" in json.loads(body)["error"]  # the Open Inference Protocol's shape
    assert app.calls == 0


def test_a_refusal_below_the_app_carries_cors_headers_and_a_preflight_is_never_shed() -> None:
    app = App()
    admission = Admission(0, cors=CorsPolicy(("http://page.test",)))
    app.edge = Edge(app.inner, admission=admission, max_body_bytes=1 << 20)
    with (
        serve_in_thread(app.outer, gate=admission, error_answer=admission.protocol_answer) as port,
        _connect(port) as conn,
    ):
        buffer = bytearray()
        for origin in ("http://page.test", "http://evil.test"):
            conn.sendall(_request("/predict/m", headers=f"Origin: {origin}\r\n"))
            status, headers, _ = _read_response(conn, buffer)
            assert status == 429
            allowed = headers.get("access-control-allow-origin")
            assert allowed == (origin if origin == "http://page.test" else None)
        assert app.calls == 0
        # A preflight goes on to the app (whose CORS middleware answers it, api.cors).
        conn.sendall(
            _request(
                "/predict/m",
                method="OPTIONS",
                headers="Origin: http://page.test\r\nAccess-Control-Request-Method: POST\r\n",
            )
        )
        _read_response(conn, buffer)
        assert app.calls == 1
