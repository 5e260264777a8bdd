"""A small Server-Sent Events client for the benchmark, on bare asyncio streams.

It costs far less per event than the HTTP servers it measures (no HTTP library: one request
written, the response head read, the chunked body decoded and cut into events), so a scenario
can hold hundreds of streams from one process. It speaks just what the benchmark needs:
HTTP/1.1, one request per connection, a body sent whole, a response either chunked or
delimited by the connection's close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["SseEvent", "SseResponse", "open_stream"]


@dataclass(frozen=True)
class SseEvent:
    """One event: its type (``message`` when unnamed), data, id, and when its last line came
    (``time.perf_counter``)."""

    event: str
    data: str
    id: str | None
    received: float


@dataclass
class SseResponse:
    """An open stream: its status, headers and events (read them with ``events``)."""

    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sent: float
    """When the request was written (``time.perf_counter``)."""
    _chunked: bool = field(default=False)

    async def body_lines(self) -> AsyncIterator[str]:
        """The body's lines, the chunked framing taken off."""
        pending = b""
        async for part in self._parts():
            pending += part
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode()
        if pending:
            yield pending.rstrip(b"\r").decode()

    async def _parts(self) -> AsyncIterator[bytes]:
        if not self._chunked:
            while part := await self.reader.read(65536):
                yield part
            return
        while True:
            size_line = await self.reader.readline()
            if not size_line:
                return
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                await self.reader.readline()
                return
            data = await self.reader.readexactly(size + 2)
            yield data[:-2]

    async def events(self) -> AsyncIterator[SseEvent]:
        """The stream's events, in order, until the server ends the body."""
        kind, event_id = "message", None
        data: list[str] = []
        async for line in self.body_lines():
            if not line:
                if data:
                    yield SseEvent(kind, "\n".join(data), event_id, time.perf_counter())
                kind, event_id = "message", None
                data = []
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
            elif name == "id":
                event_id = value

    async def text(self) -> str:
        """The whole body (for an answer that is not a stream)."""
        return "\n".join([line async for line in self.body_lines()])

    def close(self) -> None:
        """Drop the connection (a client going away mid-stream)."""
        self.writer.close()


async def open_stream(
    url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> SseResponse:
    """Send one request and read the response's head."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.open_connection(host, port)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = [
        f"{method} {target} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: text/event-stream",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sent = time.perf_counter()
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    response_headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode().partition(":")
        response_headers[name.strip().lower()] = value.strip()
    chunked = response_headers.get("transfer-encoding", "").lower() == "chunked"
    return SseResponse(status, response_headers, reader, writer, sent, chunked)
