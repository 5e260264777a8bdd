"""The gateway's HTTP/1.1 protocol: uvicorn's httptools protocol, with two savings.

1. **A refusal past ``MAX_INFLIGHT`` never enters the ASGI app.** Under overload most answers
   are this 429 (``Edge.busy_answer``). Through ASGI each costs a task, a scope, two ``send``
   calls and uvicorn's header checks; here it is one ``transport.write`` of prerendered bytes
   once the request has been read. What the protocol cannot answer this way (a pipelined
   request behind one in progress, ``Expect: 100-continue``, ``HEAD``, an upgrade) goes the
   usual way, where the ``Edge`` refuses it just the same.
2. **A response's head and body leave in one write.** uvicorn writes the status line and
   headers when the app sends ``http.response.start`` and the body when it sends
   ``http.response.body``: two ``send`` syscalls, two TCP segments, and two wake-ups of the
   client for one answer. Each response's transport is a ``conveyor.write_buffer.LoopWriteBuffer``
   that sends once two writes are held (the head until the body comes, or at the latest on the
   event loop's next turn).

Measured with wrk on loopback against a bare ASGI app that answers a prerendered 429 (server CPU
per answer): (1) 27 -> 12 us at 64 busy connections, 44 -> 21 us at 1,024 connections each
pausing between requests (the overload benchmark's shape); (2) 27 -> 22 us, and wrk's own CPU
per answer fell by a quarter.

Bytes that are not an HTTP/1.1 request get a JSON 400 naming what the parser found wrong
(``conveyor.http_protocol``, which also bounds a request's head), in the shape of the path's API
(``Edge.protocol_answer``).

Past the shortcut, the protocol also *reserves* a place under ``MAX_INFLIGHT`` for each request
it admits (``Edge.reserve``): its ASGI task only runs on the loop's next turn, and without the
reservation a burst read in one turn would all pass the bound, to be refused by the edge
through the dearer ASGI path (a profile under overload found a fifth of the refusals there).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.edge import Edge
from conveyor.http_protocol import Answer, JsonErrorProtocol
from conveyor.write_buffer import LoopWriteBuffer

__all__ = ["gateway_protocol"]


def gateway_protocol(edge: Edge) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol answering ``edge``'s busy refusals itself and writing each
    response in one piece (see the module doc); pass it to uvicorn as ``http=``."""

    heads: dict[tuple[Any, ...], bytes] = {}  # the refusal's status line and fixed headers

    class GatewayProtocol(JsonErrorProtocol):
        _shed_path: str | None = None
        _shed_keep_alive = True

        def on_headers_complete(self) -> None:
            self.reading_head = False  # also for a refusal, which does not call up
            previous = self.cycle
            path = None
            idle = previous is None or previous.response_complete
            if idle and not self.expect_100_continue and not self.parser.should_upgrade():
                path = httptools.parse_url(self.url).path.decode("ascii")
                if "%" in path:
                    path = urllib.parse.unquote(path)
                if self.parser.get_method() != b"HEAD" and edge.sheds(path):
                    self._shed_path = path
                    self._shed_keep_alive = (
                        self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
                    )
                    return
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is previous:  # an upgrade: not an HTTP request of ours
                return
            if path is not None and edge.bounded(path):
                edge.reserve(cycle.scope)  # type: ignore[arg-type]
            if not self.expect_100_continue:
                cycle.transport = LoopWriteBuffer(  # type: ignore[assignment]
                    self.transport, self.loop, send_at=2
                )

        def error_answer(self, status: int, code: str, message: str) -> Answer:
            return edge.protocol_answer(getattr(self, "url", b""), status, code, message)

        def on_body(self, body: bytes) -> None:
            if self._shed_path is None:
                super().on_body(body)

        def on_message_complete(self) -> None:
            path = self._shed_path
            if path is None:
                super().on_message_complete()
                return
            self._shed_path = None
            status, headers, request_id, body = edge.busy_answer(path, self.headers)
            key = (body, *self.server_state.default_headers)
            head = heads.get(key)
            if head is None:  # a new date (once a second): render the fixed part again
                heads.clear()
                fixed = (*self.server_state.default_headers, *headers)
                head = heads[key] = STATUS_LINE[status] + b"".join(
                    b"%s: %s\r\n" % (name, value) for name, value in fixed
                )
            lines = [head, b"x-request-id: ", request_id, b"\r\n"]
            if not self._shed_keep_alive:
                lines.append(b"connection: close\r\n")
            lines += (b"\r\n", body)
            self.transport.write(b"".join(lines))
            if not self._shed_keep_alive:
                self.transport.close()
            self.on_response_complete()

    return GatewayProtocol
