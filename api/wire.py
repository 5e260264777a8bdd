"""The gateway's HTTP/1.1 protocol: uvicorn's httptools protocol, with three savings.

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

3. **A refused request gets no ASGI scope.** uvicorn makes each request's scope (a dict of ten
   entries, a copy of the app's state) when the message begins, before anything is known about
   it; here it is made in ``on_headers_complete``, for a request that is admitted. Together with
   the lazy keep-alive timer of ``conveyor.http_protocol`` and a refusal's head rendered once per
   second for all connections, the gateway's CPU per refusal (``bazel run
   //load_testing:bench -- --scenario refusals``, the code before and after, one after the
   other): 36.6 -> 28.8-30.7 us in the overload benchmark's shape (768 connections, each
   pausing, ~3,940 refusals a second) and 22.2 -> 17.3-17.5 us at 64 busy connections. The
   same runs' floor, a bare protocol on the same loop and parser writing the same bytes
   (``load_testing/refusal_floor.py``): 17.6 and 8.1-9.8 us.

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

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.edge import Edge
from conveyor.http_protocol import Answer, JsonErrorProtocol, head_bytes
from conveyor.write_buffer import LoopWriteBuffer

__all__ = ["gateway_protocol"]


def gateway_protocol(edge: Edge) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol answering ``edge``'s busy refusals itself and writing each
    response in one piece (see the module doc); pass it to uvicorn as ``http=``."""

    # The refusals' status lines and fixed headers by body, for the server's default headers
    # (its date) they were made with: uvicorn replaces that list once a second.
    heads: dict[bytes, bytes] = {}
    made_with: list[tuple[bytes, bytes]] | None = None

    class GatewayProtocol(JsonErrorProtocol):
        _shed_path: str | None = None
        _shed_keep_alive = True

        def on_message_begin(self) -> None:
            # uvicorn's, but the request's scope waits until it is admitted
            # (``on_headers_complete``): a refusal never needs one.
            self.begin_head()
            self.url = b""
            self.expect_100_continue = False
            self.headers = []

        def on_headers_complete(self) -> None:
            self.reading_head = False  # also for a refusal, which does not call up
            previous = self.cycle
            path = None
            idle = previous is None or previous.response_complete
            parser = self.parser
            if idle and not self.expect_100_continue and not parser.should_upgrade():
                path = httptools.parse_url(self.url).path.decode("ascii")
                if "%" in path:
                    path = urllib.parse.unquote(path)
                if parser.get_method() != b"HEAD" and edge.sheds(path):
                    self._shed_path = path
                    self._shed_keep_alive = (
                        parser.get_http_version() != "1.0" and parser.should_keep_alive()
                    )
                    return
            self._open_scope()
            HttpToolsProtocol.on_headers_complete(self)
            cycle = self.cycle
            if cycle is previous:  # an upgrade: not an HTTP request of ours
                return
            if path is not None and edge.bounded(path):
                edge.reserve(cycle.scope)  # type: ignore[arg-type]
            if not self.expect_100_continue:
                cycle.transport = LoopWriteBuffer(  # type: ignore[assignment]
                    self.transport, self.loop, send_at=2
                )

        def _open_scope(self) -> None:
            """The request's ASGI scope, as uvicorn makes it when a message begins, with the
            URL and headers read since."""
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            HttpToolsProtocol.on_message_begin(self)
            self.url, self.expect_100_continue = url, expect
            self.headers = self.scope["headers"] = headers

        def error_answer(self, status: int, code: str, message: str) -> Answer:
            return edge.protocol_answer(getattr(self, "url", b""), status, code, message)

        def on_body(self, body: bytes) -> None:
            if self._shed_path is None:
                HttpToolsProtocol.on_body(self, body)

        def on_message_complete(self) -> None:
            path = self._shed_path
            if path is None:
                HttpToolsProtocol.on_message_complete(self)
                return
            self._shed_path = None
            status, headers, request_id, body = edge.busy_answer(path, self.headers)
            nonlocal made_with
            default_headers = self.server_state.default_headers
            if made_with is not default_headers:  # a new date (once a second)
                heads.clear()
                made_with = default_headers
            head = heads.get(body)
            if head is None:
                fixed = (*default_headers, *headers)
                head = heads[body] = head_bytes(status, fixed)
            end = b"\r\n\r\n" if self._shed_keep_alive else b"\r\nconnection: close\r\n\r\n"
            self.transport.write(b"".join((head, b"x-request-id: ", request_id, end, body)))
            if not self._shed_keep_alive:
                self.transport.close()
            self.on_response_complete()

    return GatewayProtocol
