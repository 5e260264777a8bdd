"""``HttpProtocol`` in a real server, spoken to over raw sockets: what a complete HTTP/1.1 server
must do (uvicorn's protocol tests are the checklist: keep-alive, pipelining, Expect:
100-continue, HEAD, chunked bodies both ways, header limits, malformed bytes), and the JSON
error contract below the app."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.http_protocol import HttpProtocol
from conveyor.tests.served import serve_in_thread


async def _app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = json.dumps({"path": scope["path"]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BrokenProtocol(HttpProtocol):
    """Its own code fails on one path, as a bug in a parser callback would."""

    def on_url(self, url: bytes) -> None:
        if url.startswith(b"/broken"):
            raise RuntimeError("a bug, not the client's fault")
        super().on_url(url)


def _serving(protocol: type[HttpProtocol]) -> contextlib.AbstractContextManager[int]:
    """A server speaking ``protocol`` on a free port, in a thread."""
    return serve_in_thread(_app, protocol=protocol)


@pytest.fixture
def port() -> Iterator[int]:
    with _serving(HttpProtocol) as free:
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
    """The lazy keep-alive timer: a connection idle for ``keep_alive`` after its last response
    is closed; one that answered a request since is not closed at the first timer's deadline
    but ``keep_alive`` after its own last response."""
    with (
        serve_in_thread(_app, keep_alive=1) as port,
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


# The checklist: an app with one behaviour per path.

DISCONNECTS: list[str] = []


async def _checklist_app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    path = scope["path"]
    if path == "/fail":
        raise RuntimeError("a bug in the app")
    if path == "/silent":
        return
    if path == "/hang-up":
        message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        DISCONNECTS.append(path)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    payload = json.dumps(
        {"path": path, "method": scope["method"], "query": scope["query_string"].decode(),
         "body": body.decode()}
    ).encode()  # fmt: skip
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def checklist() -> Iterator[int]:
    with serve_in_thread(_checklist_app) as free:
        yield free


def _responses(conn: socket.socket, count: int) -> list[tuple[str, dict[str, str], bytes]]:
    """Read ``count`` responses with a Content-Length off ``conn``."""
    data = b""
    out: list[tuple[str, dict[str, str], bytes]] = []
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            assert chunk, f"closed after {len(out)} responses"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, headers, _ = _parse(head + b"\r\n\r\n")
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = conn.recv(65536)
            assert chunk, "closed inside a body"
            rest += chunk
        out.append((status_line, headers, rest[:length]))
        data = rest[length:]
    return out


def test_pipelined_requests_are_answered_in_order(checklist: int) -> None:
    raw = b"".join(
        b"POST /echo?n=%d HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n%d" % (n, n)
        for n in range(5)
    )
    with socket.create_connection(("127.0.0.1", checklist), timeout=5) as conn:
        conn.sendall(raw)
        answers = _responses(conn, 5)
    assert [json.loads(body)["query"] for _, _, body in answers] == [f"n={n}" for n in range(5)]
    assert [json.loads(body)["body"] for _, _, body in answers] == [str(n) for n in range(5)]


def test_expect_100_continue_gets_its_interim_answer_then_the_response(checklist: int) -> None:
    with socket.create_connection(("127.0.0.1", checklist), timeout=5) as conn:
        conn.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        assert conn.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(b"hello")
        [(status_line, _, body)] = _responses(conn, 1)
    assert status_line == "HTTP/1.1 200 OK"
    assert json.loads(body)["body"] == "hello"


def test_a_chunked_request_body_reaches_the_app_whole(checklist: int) -> None:
    with socket.create_connection(("127.0.0.1", checklist), timeout=5) as conn:
        conn.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        [(_, _, body)] = _responses(conn, 1)
    assert json.loads(body)["body"] == "hello world"


def test_head_gets_the_headers_and_no_body(checklist: int) -> None:
    with socket.create_connection(("127.0.0.1", checklist), timeout=5) as conn:
        conn.sendall(b"HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        conn.settimeout(5)
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < 2 or not data.endswith(b"}"):
            chunk = conn.recv(65536)
            assert chunk
            data += chunk
    head_answer, _, get_answer = data.partition(b"\r\n\r\n")
    assert int(_parse(head_answer + b"\r\n\r\n")[1]["content-length"]) > 0
    assert get_answer.startswith(b"HTTP/1.1 200 OK")  # HEAD's answer carried no body
    assert json.loads(get_answer.partition(b"\r\n\r\n")[2])["method"] == "GET"


def test_a_response_without_a_length_is_sent_chunked(checklist: int) -> None:
    with socket.create_connection(("127.0.0.1", checklist), timeout=5) as conn:
        conn.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = conn.recv(65536)
            assert chunk
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert _parse(head + b"\r\n\r\n")[1]["transfer-encoding"] == "chunked"
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"


def test_http_1_0_closes_after_its_answer(checklist: int) -> None:
    data, closed = _exchange(checklist, b"GET /echo HTTP/1.0\r\n\r\n")
    status_line, headers, _ = _parse(data)
    assert status_line == "HTTP/1.1 200 OK"
    assert headers["connection"] == "close"
    assert closed


@pytest.mark.parametrize("path", ["/fail", "/silent"])
def test_an_app_that_fails_or_answers_nothing_is_a_json_500(checklist: int, path: str) -> None:
    data, closed = _exchange(checklist, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    status_line, headers, body = _parse(data)
    assert status_line == "HTTP/1.1 500 Internal Server Error"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "internal"
    assert closed


def test_the_app_sees_a_client_that_hangs_up(checklist: int) -> None:
    with socket.create_connection(("127.0.0.1", checklist), timeout=5) as conn:
        conn.sendall(b"POST /hang-up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npart")
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while "/hang-up" not in DISCONNECTS:
        assert time.monotonic() < deadline, "the app never saw http.disconnect"
        time.sleep(0.01)


def test_each_response_leaves_in_one_write_with_each_header_once(checklist: int) -> None:
    """Head and body arrive together: one recv on loopback gets the whole answer."""
    with socket.create_connection(("127.0.0.1", checklist), timeout=5) as conn:
        for _ in range(20):
            conn.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
            data = conn.recv(65536)
            assert data.endswith(b"}"), data
            names = [
                line.partition(b":")[0] for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
            ]
            assert sorted(names) == [b"content-length", b"content-type", b"date"]
