"""uvicorn's HTTP/1.1 protocol, keeping the JSON error contract below the ASGI app.

uvicorn answers bytes its parser rejects (a bad method, a bad header character, a Content-Length
that is not a number) itself, with a plain-text 400, before any app sees a request. Every
Conveyor service answers errors in JSON (``conveyor.web``), so ``JsonErrorProtocol`` sends the
service's error object instead, with the parser's own reason, and closes the connection as
uvicorn does. Pass it (or a subclass) to uvicorn as ``http=``.
"""

from __future__ import annotations

import sys

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from conveyor.web import error_response

__all__ = ["Answer", "JsonErrorProtocol", "malformed_message"]

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
        return response.status_code, tuple(response.raw_headers), bytes(response.body)

    def send_400_response(self, msg: str) -> None:
        """Send ``malformed_answer`` and close (uvicorn calls this for a parser error)."""
        # Called inside uvicorn's ``except httptools.HttpParserError``: the error at hand says
        # what was wrong ("Invalid method encountered", "Invalid header token").
        error = sys.exc_info()[1]
        reason = str(error) if error is not None and str(error) else msg
        status, headers, body = self.malformed_answer(reason)
        fixed = (*self.server_state.default_headers, *headers)
        self.transport.write(
            STATUS_LINE[status]
            + b"".join(b"%s: %s\r\n" % (name, value) for name, value in fixed)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()
