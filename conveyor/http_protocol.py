"""uvicorn's HTTP/1.1 protocol, keeping the JSON error contract below the ASGI app.

uvicorn answers bytes its parser rejects (a bad method, a bad header character, a Content-Length
that is not a number, a URL over 64 KiB) itself, with a plain-text 400, before any app sees a
request. Every Conveyor service answers errors in JSON (``conveyor.web``), so
``JsonErrorProtocol`` sends the service's error object instead, with the parser's own reason,
and closes the connection as uvicorn does. An exception of the protocol's own code inside a
parser callback is no fault of the client's: it is logged, and answered 500. Pass the class (or
a subclass) to uvicorn as ``http=``.
"""

from __future__ import annotations

import logging
import sys

import httptools
from starlette.responses import JSONResponse
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from conveyor.web import error_response, internal_error_response

__all__ = ["Answer", "JsonErrorProtocol", "malformed_message"]

logger = logging.getLogger(__name__)

Answer = tuple[int, tuple[tuple[bytes, bytes], ...], bytes]
"""A response to send as it is: status, headers, body."""


def malformed_message(reason: str) -> str:
    """The error message for a request the parser rejected for ``reason``."""
    return f"not a valid HTTP/1.1 request: {reason}"


class JsonErrorProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol answering unparseable requests with a JSON 400."""

    def malformed_answer(self, reason: str) -> Answer:
        """The 400 for a request the parser rejected; a service may shape it per path."""
        response = error_response(400, "invalid_request", malformed_message(reason))
        return _answer(response)

    def internal_answer(self) -> Answer:
        """The 500 for a failure of the protocol's own code; a service may shape it per path."""
        return _answer(internal_error_response())

    def send_400_response(self, msg: str) -> None:
        """Answer a parser error in JSON and close (uvicorn calls this for one)."""
        # Called inside uvicorn's ``except httptools.HttpParserError``: the error at hand says
        # what was wrong ("Invalid method encountered", "Invalid header token"). An exception
        # raised in a callback comes wrapped ("User callback error"), the real one its context.
        error = sys.exc_info()[1]
        if isinstance(error, httptools.HttpParserCallbackError):
            error = error.__context__
        if error is None or isinstance(error, httptools.HttpParserError):
            answer = self.malformed_answer(str(error or "") or msg)
        else:
            logger.error("the HTTP protocol failed on a request", exc_info=error)
            answer = self.internal_answer()
        status, headers, body = answer
        fixed = (*self.server_state.default_headers, *headers)
        self.transport.write(
            STATUS_LINE[status]
            + b"".join(b"%s: %s\r\n" % (name, value) for name, value in fixed)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()


def _answer(response: JSONResponse) -> Answer:
    return response.status_code, tuple(response.raw_headers), bytes(response.body)
