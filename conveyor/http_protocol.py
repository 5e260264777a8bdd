"""HTTP/1.1 for every Conveyor service: an asyncio protocol on httptools' public parser API,
serving an ASGI 3 application (HTTP scope, spec 2.3).

What it guarantees, per connection:

- **Requests in order.** Keep-alive is HTTP/1.1's default (HTTP/1.0 only with ``Connection:
  keep-alive``). Pipelined requests are answered in the order they came; the next one's app
  call starts once the previous response is complete, and reading pauses while one waits.
- **Bodies.** ``receive()`` gives the body as it arrives (``http.request`` messages, the last
  with ``more_body`` false; chunked request bodies are decoded by the parser), then
  ``http.disconnect`` once the response is complete or the client left. Reading pauses while
  more than ``HIGH_WATER`` bytes wait to be received. ``Expect: 100-continue`` gets its interim
  response when the app first asks for the body, never before.
- **Responses.** A response's head and first body part leave in one ``write`` (one segment
  for the client, not two). Without a ``Content-Length`` the body is sent chunked; a ``HEAD``
  response carries no body; ``send()`` waits while the transport's buffer is full.
- **Errors answer in the service's JSON error shape** (``error_answer``), then close: bytes the
  parser rejects (400, with the parser's reason), a request line and headers over
  ``max_head_bytes`` (431), a failure of the app before it started its response (500, logged;
  after it started, the connection is closed). An upgrade request is answered as a plain HTTP
  request, and the connection closed after it.
- **Idle connections close** ``keep_alive`` seconds after their last response (one timer per
  connection, armed when idle, looked at when it fires).
- **A gate may refuse before any ASGI work.** A service that sheds load (the gateway past
  ``MAX_INFLIGHT``) passes a ``Gate``: once a request's head is read and nothing is in progress
  on the connection, the gate may answer it with prerendered bytes, without a scope or an app
  call, and may reserve an admitted request's place before its app call runs.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, MutableMapping
from email.utils import formatdate
from typing import Any, Protocol

import httptools

from conveyor.web import INTERNAL_ERROR_MESSAGE, error_response

__all__ = [
    "HIGH_WATER",
    "MAX_HEAD_BYTES",
    "Answer",
    "ErrorAnswer",
    "Gate",
    "HttpProtocol",
    "Refusal",
    "date_header",
    "head_bytes",
    "json_error_answer",
    "malformed_message",
]

MAX_HEAD_BYTES = 64 * 1024
"""A request's line and headers, at most (nginx's default is 32 KiB, h11's 16 KiB)."""

HIGH_WATER = 64 * 1024
"""Request body bytes held for the app before reading from the socket pauses."""

logger = logging.getLogger(__name__)

Headers = tuple[tuple[bytes, bytes], ...]
Answer = tuple[int, Headers, bytes]
"""A response to send as it is: status, headers, body."""

ErrorAnswer = Callable[[bytes, int, str, str], Answer]
"""The answer to an error found below the app: (the request's URL as far as it was read,
status, error code, message) -> the response, in the shape of the URL's API."""

Refusal = tuple[int, Headers, bytes, bytes]
"""A gate's refusal: status, headers, the request id to echo, body."""

_STATUS_LINES: dict[int, bytes] = {
    int(status): b"HTTP/1.1 %d %s\r\n" % (status, status.phrase.encode())
    for status in http.HTTPStatus
}
_BAD_NAME = re.compile(rb"[\x00-\x20\x7f()<>@,;:\\\"/\[\]?={}]")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_NEVER_SHED = (b"HEAD", b"OPTIONS")
"""Methods the gate is not asked about, so the app answers them: ``HEAD`` (its answer has no
body, unlike the prerendered refusal) and ``OPTIONS`` (a CORS preflight, which the gateway
answers before its in-flight bound; the app sheds any other itself)."""


class Gate(Protocol):
    """Admission below the app: what the gateway's edge tells the protocol."""

    def sheds(self, path: str) -> bool:
        """Whether a request for ``path`` is refused now, with ``refusal``."""

    def bounded(self, path: str) -> bool:
        """Whether a request for ``path`` takes a place that ``reserve`` should hold."""

    def reserve(self, scope: MutableMapping[str, Any]) -> None:
        """Hold a place for an admitted request whose app call is about to be scheduled."""

    def refusal(self, path: str, headers: Iterable[tuple[bytes, bytes]]) -> Refusal:
        """The answer to a request ``sheds`` refused (``headers``: the request's, lower-case)."""


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>`` and its line end."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def head_bytes(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A response's status line and ``headers``, each line ended, without the blank line that
    ends the head."""
    return status_line(status) + b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)


_date: tuple[int, bytes] = (0, b"")


def date_header() -> bytes:
    """The ``date`` header line for now, rendered at most once a second."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, b"date: %s\r\n" % formatdate(second, usegmt=True).encode())
    return _date[1]


def malformed_message(reason: str) -> str:
    """The error message for a request the parser rejected for ``reason``."""
    return f"not a valid HTTP/1.1 request: {reason}"


def json_error_answer(url: bytes, status: int, code: str, message: str) -> Answer:
    """The service's JSON error object (``conveyor.web``), whatever the URL."""
    response = error_response(status, code, message)
    return response.status_code, tuple(response.raw_headers), bytes(response.body)


class _Exchange:
    """One request and its response: the ASGI ``receive`` and ``send`` of one app call."""

    __slots__ = (
        "body",
        "body_done",
        "chunked",
        "complete",
        "conn",
        "disconnected",
        "expect_continue",
        "head",
        "keep_alive",
        "more_body",
        "remaining",
        "scope",
        "started",
        "waiter",
    )

    def __init__(
        self, conn: HttpProtocol, scope: dict[str, Any], keep_alive: bool, expect_continue: bool
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.body = bytearray()
        self.more_body = True
        self.body_done = False  # the last http.request message was received
        self.waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self.started = False  # http.response.start sent by the app
        self.complete = False  # the whole response written
        self.head = b""  # rendered, waiting for the first body part
        self.chunked = False
        self.remaining = 0  # Content-Length bytes still owed

    def wake(self) -> None:
        """Resume a ``receive`` waiting for body or for the end of the exchange."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        """The ASGI ``receive``: body parts, then ``http.disconnect``."""
        conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if not conn.transport.is_closing():
                conn.transport.write(_CONTINUE)
        while not (self.disconnected or self.complete) and (
            self.body_done or not (self.body or not self.more_body)
        ):
            # Wait for body, or (the body given whole) for the end of the exchange.
            if not self.body_done:
                conn.resume_reading()
            self.waiter = conn.loop.create_future()
            await self.waiter
            self.waiter = None
        if self.disconnected or self.complete:
            return {"type": "http.disconnect"}
        body = bytes(self.body)
        self.body.clear()
        if self.more_body:
            conn.resume_reading()
        else:
            self.body_done = True
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        """The ASGI ``send``: ``http.response.start``, then ``http.response.body`` parts."""
        conn = self.conn
        if conn.drained is not None and not self.disconnected:
            await conn.drained
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {kind!r}")
            self.started = True
            self.expect_continue = False
            self.head = self._render_head(message["status"], message.get("headers", ()))
            return
        if self.complete or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the response began")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self.scope["method"] == "HEAD":
            out = b""
        elif self.chunked:
            out = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            self.remaining -= len(body)
            if self.remaining < 0:
                raise RuntimeError("response body longer than its Content-Length")
            out = body
        if self.head:
            out = self.head + out
            self.head = b""
        if out:
            conn.transport.write(out)
        if not more:
            if self.remaining > 0 and self.scope["method"] != "HEAD":
                raise RuntimeError("response body shorter than its Content-Length")
            self.complete = True
            self.wake()
            conn.response_complete(self)

    def _render_head(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        parts = [status_line(status), date_header()]
        length: int | None = None
        for name, value in headers:
            name = name.lower()
            if _BAD_NAME.search(name) or _BAD_VALUE.search(value):
                raise RuntimeError(f"invalid response header {name!r}")
            if name == b"content-length":
                length = int(value)
                continue  # written once, below
            elif name == b"transfer-encoding":
                continue  # the framing is this protocol's to choose
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
                continue
            parts.append(b"%s: %s\r\n" % (name, value))
        bodiless = status < 200 or status in (204, 304)
        if length is not None:
            self.remaining = length
            parts.append(b"content-length: %d\r\n" % length)
        elif not bodiless and self.scope["method"] != "HEAD":
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection serving ``app`` (see the module doc).

    ``state``: the lifespan state, shallow-copied into every request's scope. ``gate``: admission
    below the app (None: every request reaches it). ``error_answer``: the shape of an error
    found below the app. ``keep_alive``: seconds an idle connection stays open.
    ``connections``: the server's set of open connections (for a graceful shutdown).
    """

    max_head_bytes = MAX_HEAD_BYTES

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        state: dict[str, Any] | None = None,
        gate: Gate | None = None,
        error_answer: ErrorAnswer = json_error_answer,
        keep_alive: float = 5.0,
        connections: set[HttpProtocol] | None = None,
    ) -> None:
        self.app = app
        self.state = state if state is not None else {}
        self.gate = gate
        self.error_answer = error_answer
        self.keep_alive = keep_alive
        self.connections = connections if connections is not None else set()
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.reading_paused = False
        self.drained: asyncio.Future[None] | None = None  # set while writing is paused
        self.current: _Exchange | None = None  # the exchange whose app call runs
        self.queued: collections.deque[_Exchange] = collections.deque()
        self.closing = False  # no new request once the current one is answered
        # Per request, while its head is read:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_continue = False
        self.reading_head = False
        self.head_size = 0
        self.reading: _Exchange | None = None  # the exchange whose body is being read
        self.shed_path: str | None = None  # refused by the gate; its body is skipped
        self.shed_keep_alive = True
        # Idle keep-alive:
        self.idle_since: float | None = None
        self.idle_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Note the peer; the connection counts as the server's."""
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        self.idle_since = self.loop.time()
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """The client left: the exchange in progress sees ``http.disconnect``, queued ones are
        dropped, a ``send`` waiting for the buffer to drain returns."""
        self.connections.discard(self)
        for exchange in (self.current, self.reading, *self.queued):
            if exchange is not None and not exchange.complete:
                exchange.disconnected = True
                exchange.wake()
        self.queued.clear()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def pause_writing(self) -> None:
        """The transport's buffer is full: ``send`` waits."""
        if self.drained is None:
            self.drained = self.loop.create_future()

    def resume_writing(self) -> None:
        """The transport's buffer drained: waiting ``send`` calls go on."""
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; answer what it rejects, refuse a head that keeps growing."""
        self.idle_since = None
        inside = self.reading_head
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as e:
            # An exception raised in a callback comes wrapped, the real one its context: a
            # parser error there (the URL parser's) is the client's, anything else ours.
            error = e.__context__ or e
            if isinstance(error, httptools.HttpParserError) and error is not e:
                self._fail(400, "invalid_request", malformed_message(str(error)))
                return
            logger.error("the HTTP protocol failed on a request", exc_info=error)
            self._fail(500, "internal", INTERNAL_ERROR_MESSAGE)
            return
        except httptools.HttpParserUpgrade:
            # The request was handed to the app as plain HTTP; what follows is not HTTP.
            if self.reading is not None:
                self.on_message_complete()
            return
        except httptools.HttpParserError as e:
            self._fail(400, "invalid_request", malformed_message(str(e) or "unparseable"))
            return
        if inside and self.reading_head and not self.transport.is_closing():
            self.head_size += len(data)  # all of it belongs to the head still being read
            if self.head_size > self.max_head_bytes:
                limit = self.max_head_bytes // 1024
                self._fail(
                    431, "invalid_request", f"the request line and headers exceed {limit} KiB"
                )

    def eof_received(self) -> bool | None:
        """The client will send nothing more: the transport closes (what is already written is
        still sent), and a request in progress sees ``http.disconnect``."""
        return None

    # httptools callbacks

    def on_message_begin(self) -> None:
        """A request starts: its head is being read."""
        self.url = b""
        self.headers = []
        self.expect_continue = False
        self.reading_head = True
        self.head_size = 0

    def on_url(self, url: bytes) -> None:
        """Part of the request target."""
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header, its name lower-cased as ASGI has it."""
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """The head is read: refuse it through the gate, or hand it to the app."""
        self.reading_head = False
        parser = self.parser
        method = parser.get_method()
        version = parser.get_http_version()
        upgrade = parser.should_upgrade()
        keep_alive = version != "1.0" and parser.should_keep_alive() and not upgrade
        url = httptools.parse_url(self.url)
        path = url.path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        idle = self.current is None
        gate = self.gate
        if (
            gate is not None
            and idle
            and not self.expect_continue
            and method not in _NEVER_SHED
            and gate.sheds(path)
        ):
            self.shed_path = path
            self.reading = None
            self.shed_keep_alive = keep_alive
            return
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": "https" if self.transport.get_extra_info("sslcontext") else "http",
            "method": method.decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": url.path,
            "query_string": url.query or b"",
            "headers": self.headers,
            "state": self.state.copy(),
        }
        exchange = _Exchange(self, scope, keep_alive, self.expect_continue)
        self.reading = exchange
        if idle:
            if gate is not None and gate.bounded(path):
                gate.reserve(scope)
            self._start(exchange)
        else:
            self.queued.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        """Body bytes for the request being read (skipped for a refused one)."""
        exchange = self.reading
        if exchange is None or exchange.complete:
            return
        exchange.body += body
        if len(exchange.body) > HIGH_WATER:
            self.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        """The request is read whole; a refused one is answered now."""
        path = self.shed_path
        if path is not None:
            self.shed_path = None
            self._refuse(path)
            return
        exchange = self.reading
        self.reading = None
        if exchange is not None:
            exchange.more_body = False
            exchange.wake()

    # the connection's own work

    def pause_reading(self) -> None:
        """Stop reading from the socket until ``resume_reading``."""
        if not self.reading_paused and not self.transport.is_closing():
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the socket again (unless a queued request still waits its turn)."""
        if self.reading_paused and not self.queued:
            self.reading_paused = False
            self.transport.resume_reading()

    def response_complete(self, exchange: _Exchange) -> None:
        """``exchange`` is answered: close, or start the next queued request, or fall idle."""
        if exchange is not self.current:
            return
        self.current = None
        if not exchange.keep_alive or self.closing:
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        if self.queued:
            self._start(self.queued.popleft())
            if not self.queued:
                self.resume_reading()
            return
        self.resume_reading()
        self.idle_since = self.loop.time()
        self._arm_idle_timer()

    def shutdown(self) -> None:
        """The server stops: close at once if idle, else after the response in progress."""
        self.closing = True
        if self.current is None:
            self.transport.close()

    def _start(self, exchange: _Exchange) -> None:
        self.current = exchange
        task = self.loop.create_task(self._run(exchange))
        task.add_done_callback(_TASKS.discard)
        _TASKS.add(task)

    async def _run(self, exchange: _Exchange) -> None:
        """Call the app for ``exchange``; a failure is logged and answered (or the connection
        closed, if the response had begun)."""
        try:
            await self.app(exchange.scope, exchange.receive, exchange.send)
        except BaseException as e:
            if not isinstance(e, asyncio.CancelledError):
                logger.error("the application failed on %s %s", exchange.scope["method"],
                             exchange.scope["path"], exc_info=e)  # fmt: skip
            if exchange.started or exchange.disconnected:
                self.transport.close()
            else:
                exchange.disconnected = True
                self._fail(500, "internal", INTERNAL_ERROR_MESSAGE)
            if isinstance(e, asyncio.CancelledError):
                raise
            return
        if not exchange.complete and not exchange.disconnected:
            if exchange.started:
                logger.error("the application ended %s %s before its response did",
                             exchange.scope["method"], exchange.scope["path"])  # fmt: skip
                self.transport.close()
            else:
                logger.error("the application answered nothing to %s %s",
                             exchange.scope["method"], exchange.scope["path"])  # fmt: skip
                self._fail(500, "internal", INTERNAL_ERROR_MESSAGE)

    def _refuse(self, path: str) -> None:
        """Answer a request the gate refused, with its prerendered bytes."""
        gate = self.gate
        assert gate is not None
        status, headers, request_id, body = gate.refusal(path, self.headers)
        head = _refusal_head(status, headers, body, date_header())
        keep = self.shed_keep_alive and not self.closing
        end = b"\r\n\r\n" if keep else b"\r\nconnection: close\r\n\r\n"
        self.transport.write(b"".join((head, b"x-request-id: ", request_id, end, body)))
        if not keep:
            self.transport.close()
            return
        self.idle_since = self.loop.time()
        self._arm_idle_timer()

    def _fail(self, status: int, code: str, message: str) -> None:
        """Answer an error found below the app, in the service's shape, and close."""
        if self.transport.is_closing():
            return
        status, headers, body = self.error_answer(self.url, status, code, message)
        head = head_bytes(status, headers)
        self.transport.write(head + date_header() + b"connection: close\r\n\r\n" + body)
        self.transport.close()

    def _arm_idle_timer(self) -> None:
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_at(
                self.loop.time() + self.keep_alive, self._idle_timer_fired
            )

    def _idle_timer_fired(self) -> None:
        """Close the connection if idle for ``keep_alive`` since its last response, else look
        again when it would be."""
        self.idle_timer = None
        idle_since = self.idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy: its next response arms the timer again
        deadline = idle_since + self.keep_alive
        if self.loop.time() >= deadline:
            self.transport.close()
        else:
            self.idle_timer = self.loop.call_at(deadline, self._idle_timer_fired)


_TASKS: set[asyncio.Task[None]] = set()  # app calls in progress (kept referenced)

_refusal_heads: dict[tuple[bytes, bytes, Headers], bytes] = {}


def _refusal_head(status: int, headers: Headers, body: bytes, date: bytes) -> bytes:
    """A refusal's status line and headers, rendered once per body, headers and second."""
    key = (body, date, headers)
    head = _refusal_heads.get(key)
    if head is None:
        if len(_refusal_heads) > 16:
            _refusal_heads.clear()
        head = _refusal_heads[key] = head_bytes(status, headers) + date
    return head


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None
