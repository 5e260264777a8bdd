"""Server-Sent Events of ``POST /predict/{model}?stream=true``, and what the client yields.

The gateway sends a piece as ``id:`` + ``data:`` (no ``event:`` line), then ``done`` or
``error``; a ``restart`` event means the run streaming the task died (or was retried) and a
new run streams it again from its first piece, so the pieces before it are void (docs/api.md,
"Streaming"). The client yields ``Piece``, ``Restart`` and a last ``Done``; an ``error`` event
is raised as its ``ConveyorError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from conveyor_client.errors import ConveyorError, error_from


@dataclass(frozen=True)
class Piece:
    """One piece the model yielded: its response message as JSON."""

    data: dict[str, Any]
    event_id: str | None


@dataclass(frozen=True)
class Restart:
    """The stream starts again from its first piece: discard the pieces received so far."""

    attempt: int
    event_id: str | None


@dataclass(frozen=True)
class Done:
    """The end: the whole response, the pieces combined."""

    data: dict[str, Any]


StreamEvent = Piece | Restart | Done


@dataclass
class RawEvent:
    """One event as the SSE format frames it."""

    event: str
    data: str
    event_id: str | None


class Framer:
    """Groups SSE lines into events, one line at a time (comments, such as keep-alives, are
    skipped): ``feed`` each line, then ``finish``."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> RawEvent | None:
        """Take one line; return the event a blank line completes, if any."""
        if not line:
            return self.finish()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None

    def finish(self) -> RawEvent | None:
        """The event being framed, if it has data; the framer starts afresh."""
        raw = RawEvent(self._event, "\n".join(self._data), self._id) if self._data else None
        self._event, self._data, self._id = "message", [], None
        return raw


def frames(lines: Iterable[str]) -> Iterator[RawEvent]:
    """The events of SSE ``lines``."""
    framer = Framer()
    for line in lines:
        raw = framer.feed(line)
        if raw is not None:
            yield raw
    raw = framer.finish()
    if raw is not None:
        yield raw


def decode(raw: RawEvent) -> StreamEvent:
    """The client's event for one SSE event; an ``error`` event raises its error."""
    if raw.event == "error":
        raise error_from(200, raw.data.encode())
    payload = json.loads(raw.data)
    if raw.event == "restart":
        return Restart(int(payload.get("attempt", 0)), raw.event_id)
    if raw.event == "done":
        return Done(payload)
    if raw.event == "message":
        return Piece(payload, raw.event_id)
    raise ConveyorError(f"unexpected stream event {raw.event!r}", status=200, code="bad_stream")
