"""What the gateway's Python does for one refusal past ``MAX_INFLIGHT``, without the kernel.

The gateway's HTTP protocol (``api.wire``, over a real ``api.edge.Edge`` with ``MAX_INFLIGHT``
0 and metrics on) is fed a whole predict request per ``data_received`` call, in this process,
on a uvloop event loop, with a transport that drops what is written: the parser callbacks, the
shed test, the request id, the metrics count, the prerendered answer and uvicorn's keep-alive
timer, but no ``epoll``, ``recv`` or ``send``. Subtracted from the refusals scenario's CPU per
answer, it leaves what the kernel and the event loop's own machinery cost.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.server import ServerState

from api.edge import Edge
from api.wire import gateway_protocol
from conveyor.metrics import GatewayMetrics

__all__ = ["REQUEST", "PythonRefusals", "python_refusals"]

REQUEST = (
    b"POST /predict/model_a?timeout=5 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Content-Type: application/json\r\nContent-Length: 19\r\n\r\n"
    b'{"data": "example"}'
)
"""What wrk sends in the overload and refusals scenarios (``load_testing/post.lua``)."""


class _DroppingTransport(asyncio.Transport):
    """A connected transport that counts writes, keeps the last and sends nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.last = b""
        self._closing = False

    def write(self, data: Any) -> None:
        self.writes += 1
        self.last = data

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        peers = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}
        return peers.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _never_called(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("a refusal entered the ASGI app")


@dataclass(frozen=True)
class PythonRefusals:
    """The measurement: CPU microseconds per refusal, and the last answer written."""

    us_per_refusal: float
    answer: bytes


def python_refusals(refusals: int = 100_000) -> PythonRefusals:
    """This process's CPU time per refusal, over ``refusals`` of them after a warm-up."""

    async def measure() -> PythonRefusals:
        edge = Edge(_never_called, max_inflight=0, max_body_bytes=1 << 20,
                    metrics=GatewayMetrics())  # fmt: skip
        protocol_class = gateway_protocol(edge)
        config = Config(_never_called, http=protocol_class, lifespan="off")
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = _DroppingTransport()
        protocol.connection_made(transport)
        for _ in range(1_000):  # warm-up
            protocol.data_received(REQUEST)
        started = time.process_time()
        for _ in range(refusals):
            protocol.data_received(REQUEST)
        used = time.process_time() - started
        if transport.writes != refusals + 1_000 or transport.is_closing():
            raise RuntimeError(f"{transport.writes} answers written for {refusals + 1_000}")
        return PythonRefusals(used * 1e6 / refusals, bytes(transport.last))

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(measure())
