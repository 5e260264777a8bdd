"""One socket write per turn of the event loop for an AMQP connection.

aiormq writes each frame group (a publish is one: method, header and body; an ack another) to
the socket as it comes: one ``send`` syscall each, and one TCP segment for RabbitMQ to read. A
gateway publishing for many requests, or a worker acknowledging a batch of tasks, sends dozens
per turn of the loop. :class:`CoalescingFactory` opens aiormq's connections (plain or TLS, as
aiormq would) behind ``conveyor.write_buffer.LoopWriteBuffer``, which gathers a turn's writes
and sends them as one, at the start of the next turn. Order is kept; ``close`` sends what is
held first.

Measured with ``bazel run //load_testing:bench``: see docs/performance.md.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from yarl import URL

from conveyor.write_buffer import LoopWriteBuffer

__all__ = ["CoalescingFactory"]


class CoalescingFactory(TransportFactory):
    """aiormq's transport factory (TLS for ``amqps``), with writes through ``LoopWriteBuffer``.

    Pass it as aiormq's ``transport_factory`` (``FailoverConnection`` does)."""

    def __init__(self) -> None:
        self.opened = 0
        """Connections opened (reconnections included)."""

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open the connection as aiormq would, then buffer the writer's writes per turn."""
        factory = TLSTransportFactory() if url.scheme == "amqps" else TCPTransportFactory()
        reader, writer = await factory.create(url, **kwargs)
        self.opened += 1
        # StreamWriter keeps its transport in ``_transport`` (CPython 3.8 to 3.13): everything
        # it writes goes through there.
        transport = writer._transport  # type: ignore[attr-defined]
        writer._transport = LoopWriteBuffer(transport, asyncio.get_running_loop())  # type: ignore[attr-defined]
        return reader, writer
