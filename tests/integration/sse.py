"""Reading what streams in integration tests: Server-Sent Events off a real HTTP response, and
a task's event stream in Redis (``conveyor.events``).

``iter_events`` reads an SSE body as it comes (a test may stop reading, or act, mid-stream);
``read_events`` reads one streamed request to its end (or ``limit`` pieces). A piece's event
type is SSE's default, ``message``; comments (keepalives) are no events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import redis

from conveyor.events import parse_entries
from conveyor.protocol import EVENTS_KEY_PREFIX

__all__ = [
    "FINAL",
    "Event",
    "event_types",
    "events_keys",
    "final_types",
    "iter_events",
    "read_events",
]

Event = tuple[str | None, str, Any]
"""(id, event, data as JSON) of one Server-Sent Event; a piece's event is "message"."""

FINAL = ("done", "failed", "cancelled")
"""The types of a task's final event."""


def iter_events(lines: Iterable[str]) -> Iterator[Event]:
    """The events of an SSE body's lines, each as soon as its blank line is read."""
    event_id, kind, data = None, "message", ""
    for line in lines:
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield event_id, kind, json.loads(data)
            event_id, kind, data = None, "message", ""


def read_events(
    url: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    limit: int | None = None,
    timeout: float = 60.0,
) -> list[Event]:
    """The events of one streamed request (200, ``text/event-stream``), until its end or
    ``limit`` pieces ("message" events): then the client closes the connection."""
    events: list[Event] = []
    with (
        httpx.Client(base_url=url, timeout=timeout) as client,
        client.stream(method, path, json=body, headers=headers or {}) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in iter_events(response.iter_lines()):
            events.append(event)
            if limit is not None and sum(kind == "message" for _, kind, _ in events) >= limit:
                break
    return events


def events_keys(client: redis.Redis) -> set[bytes]:
    """The keys of every task's event stream (a test's brokers are its own: the new one after
    a request is that request's)."""
    return set(client.scan_iter(match=f"{EVENTS_KEY_PREFIX}*"))


def event_types(client: redis.Redis, key: str | bytes) -> list[str]:
    """The types of the events of the task's event stream at ``key``, in order."""
    return [event.type for event in parse_entries(client.xrange(key))]


def final_types(client: redis.Redis, key: str | bytes) -> list[str] | None:
    """``event_types`` once the stream has its final event, else None (for ``wait_until``)."""
    types = event_types(client, key)
    return types if types and types[-1] in FINAL else None
