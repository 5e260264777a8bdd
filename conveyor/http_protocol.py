"""uvicorn's HTTP/1.1 protocol, keeping the JSON error contract below the ASGI app.

uvicorn answers bytes its parser rejects (a bad method, a bad header character, a Content-Length
that is not a number, a URL over 64 KiB) itself, with a plain-text 400, before any app sees a
request. Every Conveyor service answers errors in JSON (``conveyor.web``), so
``JsonErrorProtocol`` sends the service's error object instead, with the parser's own reason,
and closes the connection as uvicorn does. An exception of the protocol's own code inside a
parser callback is no fault of the client's: it is logged, and answered 500.

httptools sets no bound on a request's head: it gathers a header of any size, re-copying it with
every piece that arrives. ``JsonErrorProtocol`` answers 431 once more than ``MAX_HEAD_BYTES``
arrive inside one head (counted in whole reads that begin and end inside it: no request is
refused for the body that follows its head; a head is refused at most one read or two past the
bound). Pass the class (or a subclass) to uvicorn as ``http=``.

The keep-alive timeout is kept lazily. uvicorn arms a timer after every response and cancels
it when the next request's bytes arrive: a timer handle made and dropped per request. A bare
httptools protocol answering a prerendered 429 to wrk in the overload benchmark's shape (768
connections, each pausing, ~7,900 answers a second; measured by hand, alternating) cost 14 us
an answer without such a timer and 17-18 with one; in the gateway the difference alone was
within the noise (``api.wire`` has what it and the other refusal savings gave). Here a
response notes when the connection fell idle, and one timer per connection, armed only if none
is, looks at that note when it fires: idle for ``timeout_keep_alive`` since the last response,
the connection is closed as uvicorn would; busy, or idle for less, the timer is armed again for
the rest (or left to the next response). Same deadline; one timer per ``timeout_keep_alive``
at most.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from conveyor.web import INTERNAL_ERROR_MESSAGE, error_response

__all__ = ["MAX_HEAD_BYTES", "Answer", "JsonErrorProtocol", "head_bytes", "malformed_message"]

MAX_HEAD_BYTES = 64 * 1024
"""A request's line and headers, at most (nginx's default is 32 KiB, h11's 16 KiB)."""

logger = logging.getLogger(__name__)

Answer = tuple[int, tuple[tuple[bytes, bytes], ...], bytes]
"""A response to send as it is: status, headers, body."""


def head_bytes(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A response's status line and ``headers``, each line ended, without the blank line that
    ends the head."""
    return STATUS_LINE[status] + b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)


def malformed_message(reason: str) -> str:
    """The error message for a request the parser rejected for ``reason``."""
    return f"not a valid HTTP/1.1 request: {reason}"


class JsonErrorProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol answering unparseable requests with a JSON 400, and heads
    over ``MAX_HEAD_BYTES`` with a JSON 431."""

    max_head_bytes = MAX_HEAD_BYTES
    reading_head = False  # between a request's first byte and the end of its headers
    _head_bytes = 0
    _idle_since: float | None = None  # the loop's time of the last response, if idle since
    _keep_alive_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        """Feed the parser; refuse a head that keeps growing past ``max_head_bytes``."""
        self._idle_since = None
        inside = self.reading_head
        super().data_received(data)
        if not (inside and self.reading_head) or self.transport.is_closing():
            return
        self._head_bytes += len(data)  # all of it belongs to the head still being read
        if self._head_bytes > self.max_head_bytes:
            limit = self.max_head_bytes // 1024
            message = f"the request line and headers exceed {limit} KiB"
            self._send_and_close(self.error_answer(431, "invalid_request", message))

    def on_message_begin(self) -> None:
        """A request starts: its head is being read."""
        self.begin_head()
        super().on_message_begin()

    def begin_head(self) -> None:
        """Count a new request's head from nothing (for a subclass that replaces
        ``on_message_begin``)."""
        self.reading_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        """The head is read; the rest is uvicorn's."""
        self.reading_head = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timer kept lazily (see the module doc)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = now = self.loop.time()
        if self._keep_alive_timer is None:
            self._keep_alive_timer = self.loop.call_at(
                now + self.timeout_keep_alive, self._keep_alive_expired
            )

    def _keep_alive_expired(self) -> None:
        """The lazy keep-alive timer fired: close the connection if it has been idle for
        ``timeout_keep_alive`` since its last response, else look again when it would be."""
        self._keep_alive_timer = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy: its next response arms the timer again
        deadline = idle_since + self.timeout_keep_alive
        if self.loop.time() >= deadline:
            self.timeout_keep_alive_handler()
        else:
            self._keep_alive_timer = self.loop.call_at(deadline, self._keep_alive_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, and the keep-alive timer dropped."""
        if self._keep_alive_timer is not None:
            self._keep_alive_timer.cancel()
            self._keep_alive_timer = None
        super().connection_lost(exc)

    def error_answer(self, status: int, code: str, message: str) -> Answer:
        """An error answered below the app, in the service's error object; a service may shape
        it per path."""
        response = error_response(status, code, message)
        return response.status_code, tuple(response.raw_headers), bytes(response.body)

    def send_400_response(self, msg: str) -> None:
        """Answer a parser error in JSON and close (uvicorn calls this for one)."""
        # Called inside uvicorn's ``except httptools.HttpParserError``: the error at hand says
        # what was wrong ("Invalid method encountered", "Invalid header token"). An exception
        # raised in a callback comes wrapped ("User callback error"), the real one its context.
        error = sys.exc_info()[1]
        if isinstance(error, httptools.HttpParserCallbackError):
            error = error.__context__
        if error is None or isinstance(error, httptools.HttpParserError):
            reason = malformed_message(str(error or "") or msg)
            answer = self.error_answer(400, "invalid_request", reason)
        else:
            logger.error("the HTTP protocol failed on a request", exc_info=error)
            answer = self.error_answer(500, "internal", INTERNAL_ERROR_MESSAGE)
        self._send_and_close(answer)

    def _send_and_close(self, answer: Answer) -> None:
        status, headers, body = answer
        fixed = (*self.server_state.default_headers, *headers)
        self.transport.write(head_bytes(status, fixed) + b"connection: close\r\n\r\n" + body)
        self.transport.close()
