"""Fewer ``send`` syscalls: a transport wrapper that joins writes made close together.

Each ``transport.write`` on a socket is one ``send`` syscall, one TCP segment, and one wake-up of
the peer. :class:`LoopWriteBuffer` holds writes and sends them as one, at the latest on the
event loop's next turn:

- the AMQP connections (``conveyor.amqp_writes``): a gateway publishing for many requests, or a
  worker acknowledging a batch, makes dozens of writes per turn; they leave as one;
- an HTTP response (``api.wire``, ``send_at=2``): uvicorn writes the head and then the body; they
  leave together as soon as the body comes.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["LoopWriteBuffer"]


class LoopWriteBuffer:
    """A transport that holds writes and sends them joined, in order: on the event loop's next
    turn, or at once when ``send_at`` writes are held (``None``: only on the next turn).

    ``close`` and ``write_eof`` send what is held first; ``abort`` drops it. Everything else
    (``get_extra_info``, flow control, ...) is the wrapped transport's."""

    __slots__ = ("_held", "_loop", "_send_at", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        send_at: int | None = None,
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._send_at = send_at
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data``: it leaves with the others held, on the next turn or at ``send_at``."""
        held = self._held
        if not held:
            self._loop.call_soon(self.flush)
        held.append(bytes(data))
        if len(held) == self._send_at:
            self.flush()

    def writelines(self, lines: Any) -> None:
        """Hold each of ``lines``."""
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what is held now, as one write (nothing once the connection is closing)."""
        held = self._held
        if not held:
            return
        self._held = []
        if not self._transport.is_closing():
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

    def is_closing(self) -> bool:
        """Whether the connection is closing (asked on every response: no ``__getattr__``)."""
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
