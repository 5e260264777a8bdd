"""One socket write per turn of the event loop for an AMQP connection.

aiormq writes each frame group (a publish is one: method, header and body; an ack another) to
the socket as it comes: one ``send`` syscall each, and one TCP segment for RabbitMQ to read. A
gateway publishing for many requests, or a worker acknowledging a batch of tasks, sends dozens
per turn of the loop. :class:`CoalescingFactory` opens aiormq's connections (plain or TLS, as
aiormq would) behind :class:`LoopWriteBuffer`, which gathers a turn's writes and sends them as
one, at the start of the next turn. Order is kept; ``close`` sends what is held first.

Measured with ``bazel run //load_testing:bench``: see docs/performance.md.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from yarl import URL

__all__ = ["CoalescingFactory", "LoopWriteBuffer"]


class LoopWriteBuffer:
    """A transport that holds writes until the event loop's next turn, then sends them joined.

    Everything but ``write``, ``writelines``, ``close``, ``write_eof`` and ``abort`` is the
    wrapped transport's (``is_closing``, ``get_extra_info``, flow control)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data``; the held writes go out together on the next turn."""
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        """Hold each of ``lines``."""
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what is held now, as one write (nothing once the connection is closing)."""
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        """Send what is held, then close."""
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        """Send what is held, then end the stream."""
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        """Drop what is held and the connection."""
        self._held = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


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
