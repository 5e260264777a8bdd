"""The floor under a refusal: what answering one costs a Python server that does nothing else.

``FloorServer`` serves, in a thread of the bench's process, a bare ``asyncio.Protocol`` on the
gateway's event loop (uvloop) and HTTP parser (httptools) that answers every request with the
gateway's own prerendered 429 bytes: no ASGI, no uvicorn, no request id, no metrics, no
keep-alive timer. Driven by the same wrk phases as the gateway (``load_testing/refusals.py``),
its CPU per answer is the part of a refusal that no gateway code can remove: the event loop's
wake-up, the ``recv``, the parse and the ``send``. The gateway's cost over it is what is left to
win in Python.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import cast

import httptools
import uvloop

from api.edge import Edge
from conveyor.http_protocol import head_bytes
from load_testing import procstat

__all__ = ["FloorServer", "gateway_refusal_bytes"]


def gateway_refusal_bytes() -> bytes:
    """The bytes of the gateway's 429 past ``MAX_INFLIGHT`` on ``/predict``, with the headers
    uvicorn adds (a date) and a request id, as the gateway sends them."""

    async def unused(scope: object, receive: object, send: object) -> None:
        raise AssertionError("never called")

    edge = Edge(unused, max_inflight=0, max_body_bytes=1)
    status, headers, request_id, body = edge.busy_answer("/predict/model_a", ())
    fixed = ((b"date", b"Sat, 28 Nov 2026 00:00:00 GMT"), *headers, (b"x-request-id", request_id))
    return head_bytes(status, fixed) + b"\r\n" + body


class _Refuser(asyncio.Protocol):
    """Answers each complete request with ``answer``, on the connection it came on."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's, not asyncio's subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(self.answer)


class FloorServer:
    """The bare refuser on a free loopback port, in its own thread, while the block runs."""

    def __init__(self) -> None:
        self.answer = gateway_refusal_bytes()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._loop = uvloop.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refusal-floor", daemon=True)
        self._tid = 0

    def __enter__(self) -> FloorServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the floor server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        """Where it listens (any path is refused alike)."""
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds its thread has used."""
        return procstat.thread_cpu_seconds(self._tid)

    def _run(self) -> None:
        self._tid = threading.get_native_id()
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(
                lambda: _Refuser(self.answer), "127.0.0.1", self.port, backlog=4096
            )
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()
