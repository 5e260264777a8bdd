"""An asynchronous (or streamed) task's life as a Redis stream: what ``GET /tasks/{id}/events`` and
``?wait=`` follow, written by whoever moves the task on.

Each asynchronous task has one stream, ``conveyor:events:<task_id>`` (``Task.events_key``),
expiring with the task. Every entry has a ``type`` and, by type, these fields (all strings):

============  ==============  ==================================================================
type          written by      fields
============  ==============  ==================================================================
queued        the gateway     ``seq``: the task's place in its version's submit order
started       the worker      ``attempt`` (1 for the first run), ``worker``
progress      the worker      ``fraction`` (0 to 1, or empty), ``message``
retrying      the worker      ``attempt`` (the run that failed), ``delay_ms``, ``code``,
                              ``message``, ``seq`` (its new place in the submit order)
chunk         the worker      ``index``, ``attempt``, ``data``: a piece of a streamed response
                              (``conveyor.streams``)
restart       the worker      ``attempt``: a new run streams again from its first piece
done          the worker      none
failed        the worker      ``code`` (a ``TaskError`` code, lower case)
cancelled     the gateway     ``code``
============  ==============  ==================================================================

``done``, ``failed`` and ``cancelled`` are final: appended by the same script that stores the
result (``conveyor.results``), so a stored result always has its final event and the other way
round; nothing follows it. The entry id is the event's id (SSE ``id:``): a reader that resumes
after an id misses nothing.

Positions: each version has a hash ``conveyor:queue:<m>:<v>`` counting the asynchronous tasks
``submitted`` to it (the ``seq`` of each, in order) and ``started`` by its workers (a task a
worker takes counts once it is taken, also when it turns out to be cancelled). A queued task's
position is about ``seq - started - 1`` tasks ahead of it: approximate, since priorities and
the two durable lanes do not keep submit order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis

from conveyor.protocol import MAX_EVENTS
from proto import task_pb2

__all__ = [
    "FINAL_TYPES",
    "TaskEvent",
    "final_type",
    "parse_entries",
    "report_progress",
]

QUEUED: Final = "queued"
STARTED: Final = "started"
PROGRESS: Final = "progress"
RETRYING: Final = "retrying"
DONE: Final = "done"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
FINAL_TYPES: Final = frozenset({DONE, FAILED, CANCELLED})
"""The event types that end a task's stream."""


def final_type(result: task_pb2.TaskResult) -> str:
    """The final event of a task that ended with ``result``: done, failed or cancelled."""
    if result.WhichOneof("outcome") != "error":
        return DONE
    if result.error.code == task_pb2.TaskError.CANCELLED:
        return CANCELLED
    return FAILED


def error_code(error: task_pb2.TaskError) -> str:
    """A ``TaskError`` code as events and the HTTP API spell it (``model_error``)."""
    return str(task_pb2.TaskError.Code.Name(error.code)).lower()


@dataclass(frozen=True)
class TaskEvent:
    """One entry of a task's stream: its id (``<ms>-<n>``), type and fields."""

    id: str
    type: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """True for done, failed and cancelled: nothing follows."""
        return self.type in FINAL_TYPES

    @property
    def unix_ms(self) -> int:
        """When Redis appended the event (the id's time part)."""
        return int(self.id.split("-", 1)[0])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_entries(entries: Sequence[Any] | None) -> list[TaskEvent]:
    """Read ``XRANGE``/``XREAD`` entries (``(id, fields)`` pairs) as events."""
    events = []
    for entry_id, raw in entries or ():
        fields = {_text(k): _text(v) for k, v in raw.items()}
        kind = fields.pop("type", "")
        events.append(TaskEvent(_text(entry_id), kind, fields))
    return events


async def report_progress(
    client: aioredis.Redis, task: task_pb2.Task, fraction: float | None, message: str
) -> None:
    """Append a ``progress`` event to ``task``'s stream (nothing for a task without one)."""
    if not task.events_key:
        return
    await client.xadd(
        task.events_key,
        {
            "type": PROGRESS,
            "fraction": "" if fraction is None else repr(float(fraction)),
            "message": message,
        },
        maxlen=MAX_EVENTS,
        approximate=True,
    )
