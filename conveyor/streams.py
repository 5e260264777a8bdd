"""Streamed responses: the pieces ("chunks") of a task, in its event stream and pushed to the
gateway that waits for them.

A task asked for in pieces (``Task.stream``) has an event stream (``Task.events_key``,
``conveyor.events``). The worker appends each piece there as a ``chunk`` event, in order, and,
when a gateway waits for them (``Task.chunk_channel``), publishes it on that channel as a
``StreamChunk`` carrying the event's id, in the same script, so a push and the stream never
disagree. Pieces appended together (``ChunkWriter.append``) share one round trip and, up to
``PIECES_PER_SCRIPT``, one script run.

``chunk`` events have the fields ``index`` (0, 1, ... within the run), ``attempt`` and ``data``
(the response message, serialized, in base64). A run that finds an earlier run of the same task
streamed before it (``streamed_key``: the earlier worker died, the task was redelivered or
retried) appends a ``restart`` event (field ``attempt``) before its first piece: a reader drops
what it read of the stream so far and reads the pieces again from ``index`` 0. The stream ends
with the task's final event (``done``, ``failed``, ``cancelled``), appended where the result is
stored.

A gateway that no longer wants the pieces (its client went away) sets ``stop_key``; each append
answers whether it is set, and the worker then stops the model's stream.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from conveyor.events import TaskEvent
from conveyor.protocol import MAX_EVENTS, stop_key, streamed_key
from proto import task_pb2

__all__ = [
    "CHUNK",
    "PIECES_PER_SCRIPT",
    "RESTART",
    "AppendOutcome",
    "Chunk",
    "ChunkAppend",
    "ChunkWriter",
    "Restart",
    "parse_push",
    "push_item",
    "request_stop",
    "stream_item",
]

CHUNK: Final = "chunk"
RESTART: Final = "restart"

_EVENT_ID_TAG: Final = 18  # StreamChunk.event_id: field 2, length-delimited

# Appends several pieces in order. KEYS, three a piece: events stream, streamed marker, stop key.
# ARGV[1]: the stream bound; then eight a piece: data (base64), index, attempt, chunk channel
# ('' for none), '1' for the first piece of a run, ttl, the push without its event id (a
# serialized StreamChunk), the restart push without its event id. A serialized protobuf message
# followed by one more field is that message with the field set, so each push gets its entry id
# appended here. Answers {entry id, 1 when the stop key is set} for each piece, flattened.
_APPEND = """
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local events, streamed, stop = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local a = 1 + i * 8
  local attempt, channel, first, ttl = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  if first == '1' and redis.call('SET', streamed, attempt, 'EX', ttl, 'GET') then
    local rid = redis.call('XADD', events, 'MAXLEN', '~', ARGV[1], '*', 'type', 'restart',
                           'attempt', attempt)
    if channel ~= '' then
      redis.call('PUBLISH', channel, ARGV[a + 8] .. string.char(18, #rid) .. rid)
    end
  end
  local id = redis.call('XADD', events, 'MAXLEN', '~', ARGV[1], '*', 'type', 'chunk',
                        'index', ARGV[a + 2], 'attempt', attempt, 'data', ARGV[a + 1])
  if first == '1' then redis.call('EXPIRE', events, ttl) end
  if channel ~= '' then
    redis.call('PUBLISH', channel, ARGV[a + 7] .. string.char(18, #id) .. id)
  end
  out[#out + 1] = id
  out[#out + 1] = redis.call('EXISTS', stop)
end
return out
"""

PIECES_PER_SCRIPT: Final = 32
"""The most pieces one script run appends: a run blocks Redis meanwhile, so a flush of more
pipelines several."""


@dataclass(frozen=True)
class ChunkAppend:
    """One piece to append: its task, serialized response message and place in its run."""

    task: task_pb2.Task
    payload: bytes
    index: int


@dataclass(frozen=True)
class AppendOutcome:
    """What appending a piece answered: its event id, and whether the task is to stop."""

    event_id: str
    stop: bool


@dataclass(frozen=True)
class Chunk:
    """A piece of a stream as a reader sees it (from an event or a push)."""

    id: str
    index: int
    attempt: int
    payload: bytes


@dataclass(frozen=True)
class Restart:
    """The marker before a new run's pieces: the pieces read before it are void."""

    id: str
    attempt: int


class ChunkWriter:
    """Appends pieces of streamed tasks to their event streams (and pushes), many in one round
    trip. ``max_chunks`` bounds a run's pieces (the stream is trimmed past it plus the other
    events a task may have); ``ttl_seconds`` is how long a stream lives past its latest run's
    first piece at least (its final event sets the result's time to live)."""

    def __init__(self, client: aioredis.Redis, max_chunks: int, ttl_seconds: int) -> None:
        self.redis = client
        self.max_entries = max_chunks + MAX_EVENTS
        self.ttl_seconds = ttl_seconds
        self._sha = client.register_script(_APPEND).sha

    async def append(self, items: Sequence[ChunkAppend]) -> list[AppendOutcome]:
        """Append ``items`` in order (several tasks' pieces may be mixed; each task's in its
        own order) in one pipelined round trip; one outcome per item."""
        if not items:
            return []
        try:
            replies = await self._pipelined(items)
        except NoScriptError:  # Redis restarted or flushed its scripts: nothing ran; load it
            await self.redis.script_load(_APPEND)
            replies = await self._pipelined(items)
        return [
            AppendOutcome(_text(reply[i]), bool(reply[i + 1]))
            for reply in replies
            for i in range(0, len(reply), 2)
        ]

    async def _pipelined(self, items: Sequence[ChunkAppend]) -> list[Any]:
        """The script (``EVALSHA``) for each ``PIECES_PER_SCRIPT`` items, in one round trip. A
        registered script run in a pipeline would first cost a ``SCRIPT EXISTS`` round trip of
        its own on every call."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(items), PIECES_PER_SCRIPT):
                keys: list[str] = []
                args: list[Any] = [self.max_entries]
                for item in items[start : start + PIECES_PER_SCRIPT]:
                    task = item.task
                    keys += (task.events_key, streamed_key(task.task_id), stop_key(task.task_id))
                    args += self._arguments(item)
                pipe.evalsha(self._sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute()
        return replies

    def _arguments(self, item: ChunkAppend) -> tuple[Any, ...]:
        """The script's eight arguments for ``item`` (see ``_APPEND``)."""
        task = item.task
        attempt = task.attempt or 1
        push = task_pb2.StreamChunk(
            task_id=task.task_id,
            kind=task_pb2.StreamChunk.CHUNK,
            payload=item.payload,
            index=item.index,
            attempt=attempt,
        ).SerializeToString()
        restart = b""
        if item.index == 0 and task.chunk_channel:
            restart = task_pb2.StreamChunk(
                task_id=task.task_id, kind=task_pb2.StreamChunk.RESTART, attempt=attempt
            ).SerializeToString()
        return (
            base64.b64encode(item.payload),
            item.index,
            attempt,
            task.chunk_channel,
            "1" if item.index == 0 else "0",
            max(self.ttl_seconds, task.result_ttl_seconds),
            push,
            restart,
        )


async def request_stop(client: aioredis.Redis, task_id: str, ttl_seconds: int) -> None:
    """Ask the worker running ``task_id``'s stream to stop at its next piece."""
    await client.set(stop_key(task_id), "1", ex=max(1, ttl_seconds))


def parse_push(raw: bytes | str) -> task_pb2.StreamChunk:
    """Read a message of a chunk channel (raises ``DecodeError`` for one that is not a
    ``StreamChunk``)."""
    push = task_pb2.StreamChunk()
    push.ParseFromString(raw.encode() if isinstance(raw, str) else raw)
    return push


def stream_item(event: TaskEvent) -> Chunk | Restart | None:
    """The piece or restart marker an event is, or None for any other event."""
    if event.type == CHUNK:
        return Chunk(
            id=event.id,
            index=int(event.fields.get("index", "0")),
            attempt=int(event.fields.get("attempt", "1")),
            payload=base64.b64decode(event.fields.get("data", "")),
        )
    if event.type == RESTART:
        return Restart(id=event.id, attempt=int(event.fields.get("attempt", "1")))
    return None


def push_item(push: task_pb2.StreamChunk) -> Chunk | Restart | None:
    """The piece or restart marker a push is (None for a kind this release does not know)."""
    if push.kind == task_pb2.StreamChunk.CHUNK:
        return Chunk(push.event_id, push.index, push.attempt or 1, push.payload)
    if push.kind == task_pb2.StreamChunk.RESTART:
        return Restart(push.event_id, push.attempt or 1)
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
