"""Streamed responses at the gateway: the pieces of a task, in order, each once, then its end.

A streamed task's pieces are entries of its event stream (``conveyor.streams``); the worker
also pushes each one, with its entry id, on the chunk channel of the gateway that waits for it
(``conveyor.waiter`` routes the pushes by task id). Two readers:

- ``ChunkReader``, for a synchronous streamed task of this gateway: the pushes, as long as they
  come in order (each piece's ``index`` the next of its run, a ``restart`` starting a run anew);
  anything else (a push out of order, more pushes waiting than ``buffer``, a lost subscription)
  is a gap, filled by reading the event stream after the last id taken (``XRANGE``), so nothing
  is lost, repeated or reordered, and a slow consumer costs a bounded buffer, not memory that
  grows. Once the result is known the rest of the stream is read, then ``StreamEnd``.
- ``follow_task``, for any task on any gateway: the event stream after an id, read with blocking
  reads (``XREAD BLOCK``, through the ``EventSource``, which bounds them: ``MAX_WAITING``, a
  block shorter than the client's socket timeout), until the task's final event.

Both yield exactly the ``chunk`` and ``restart`` entries of the event stream after where they
started, in entry order, then ``StreamEnd``. ``sse_*`` render them as Server-Sent Events, the
wire format of every streaming endpoint of the REST API (docs/api.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

import orjson

from conveyor.events import TaskEvent
from conveyor.streams import Chunk, Restart, stream_item
from proto import task_pb2

__all__ = [
    "DEFAULT_BUFFER",
    "KEEPALIVE_SECONDS",
    "READ_COUNT",
    "SSE_HEADERS",
    "SSE_KEEPALIVE",
    "ChunkReader",
    "EventSource",
    "StreamEnd",
    "StreamItem",
    "batches_with_keepalives",
    "follow_task",
    "sse_chunk",
    "sse_end",
    "sse_error",
    "sse_restart",
    "with_keepalives",
]

DEFAULT_BUFFER: Final = 64
"""Pushed pieces one stream holds for a slow consumer before it drops them (and reads them
from Redis once the consumer catches up)."""

READ_COUNT: Final = 64
"""Entries one read of the event stream answers at most (a reader reads on after them)."""

NO_STREAM_POLL_SECONDS: Final = 0.2
"""How often ``follow_task`` polls a task that has no event stream for its result."""


@dataclass(frozen=True)
class StreamEnd:
    """The end of a stream: the task's result (done: ``response`` is the pieces combined;
    else ``error`` is set)."""

    result: task_pb2.TaskResult


StreamItem = Chunk | Restart | StreamEnd
"""What a stream yields: pieces and restart markers (``conveyor.streams``), then one end."""


class EventSource(Protocol):
    """Reads of tasks' event streams, and the bound on requests that wait on them
    (``api.following.TaskFollower``)."""

    async def events_after(
        self, task_id: str, after: str, block_ms: int, count: int = ...
    ) -> list[TaskEvent]:
        """The first ``count`` events after ``after``, waiting up to ``block_ms`` (0: none)."""
        ...

    def check_room(self, model: str | None = None) -> None:
        """Raise ``Overloaded`` when no more requests may wait."""

    def parked(self) -> AbstractAsyncContextManager[None]:
        """Hold a waiting place meanwhile."""
        ...


def _id_key(event_id: str) -> tuple[int, int]:
    """A stream entry id (``<ms>-<n>``, or ``<ms>``) as a tuple that sorts as Redis does."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ChunkReader:
    """One synchronous streamed task's pieces, from its pushes and, past a gap, its event
    stream (see the module doc). A ``conveyor.waiter.ChunkSink``: ``push``, ``resolved`` and
    ``resync`` only take note; ``next`` does the reading.

    Invariant: ``_items`` holds entries of the event stream with ids after every id delivered,
    in entry order, with no entry between them missing; ``_tail`` is the id of its last one (or
    of the last delivered, when empty): reading from Redis goes on after ``_tail``.
    """

    def __init__(
        self,
        task_id: str,
        source: EventSource,
        read_result: Callable[[], Awaitable[task_pb2.TaskResult | None]],
        buffer: int = DEFAULT_BUFFER,
        after: str = "0-0",
    ) -> None:
        self.task_id = task_id
        self._source = source
        self._read_result = read_result
        self._buffer = max(1, buffer)
        self._items: deque[Chunk | Restart] = deque()
        self._tail = after
        self._tail_key = _id_key(after)
        self._next_index = 0
        self._attempt: int | None = None
        self._gap = False  # pushes are not to be trusted: read the stream after _tail
        self._ending = False  # the result is known: read what is left, then end
        self._check_stored = False  # a notification may be lost: read the stored result
        self._missed = False  # a push was dropped during the current read
        self._result: task_pb2.TaskResult | None = None
        self._waker: asyncio.Future[None] | None = None
        self.dropped = 0
        """Pushes not taken (a gap, or the buffer full): read from Redis instead."""

    # ChunkSink: called on the subscription's task

    def push(self, item: Chunk | Restart) -> None:
        """Take a pushed piece if it is the next one and there is room; else note a gap."""
        key = _id_key(item.id)
        if key <= self._tail_key:
            return  # taken already (read from the stream)
        if self._gap or self._ending:
            self.dropped += 1
            self._missed = True  # pushed while reading: read once more before trusting pushes
            return
        if len(self._items) >= self._buffer or not self._follows(item):
            self.dropped += 1
            self._gap = True
        else:
            self._take(item, key)
        self._wake()

    def resolved(self, result: task_pb2.TaskResult | None) -> None:
        """The task's result was notified (None: read the stored one)."""
        if result is None:
            self._check_stored = True
        elif self._result is None:
            self._result = result
        self._wake()

    def resync(self) -> None:
        """The subscription was away: pushes and the notification may be lost."""
        self._gap = True
        self._check_stored = True
        self._wake()

    # the consumer's side

    async def next(self, deadline: float) -> Chunk | Restart | StreamEnd | None:
        """The next piece or restart marker, or ``StreamEnd``; None once ``deadline``
        (``time.monotonic()``) passed without the task's end. Raises what reading Redis does
        (``ServiceUnavailable``)."""
        while True:
            if self._items:
                return self._items.popleft()
            if self._result is not None and not self._ending:
                self._ending = True
                self._gap = True  # the rest of the stream, from Redis (one read at least)
            if self._gap:
                self._missed = False
                if not await self._read_more() and not self._missed:
                    self._gap = False  # caught up: pushes from here on are taken again
                continue
            if self._ending:
                assert self._result is not None
                return StreamEnd(self._result)
            if self._check_stored:
                self._check_stored = False
                stored = await self._read_result()
                if stored is not None and self._result is None:
                    self._result = stored
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stored = await self._read_result()  # a notification lost at the last moment
                if stored is None:
                    return None
                self._result = stored
                continue
            await self._sleep(remaining)

    def _follows(self, item: Chunk | Restart) -> bool:
        """Whether ``item`` may come right after the last piece taken."""
        if isinstance(item, Restart):
            return True
        return item.index == self._next_index and self._attempt in (None, item.attempt)

    def _take(self, item: Chunk | Restart, key: tuple[int, int]) -> None:
        self._items.append(item)
        self._tail, self._tail_key = item.id, key
        if isinstance(item, Restart):
            self._next_index, self._attempt = 0, item.attempt
        else:
            self._next_index, self._attempt = item.index + 1, item.attempt

    async def _read_more(self) -> bool:
        """Read the event stream after ``_tail`` (one batch); True when there may be more (a
        full batch)."""
        events = await self._source.events_after(self.task_id, self._tail, 0, READ_COUNT)
        for event in events:
            item = stream_item(event)
            key = _id_key(event.id)
            if item is not None:
                self._take(item, key)
            else:
                self._tail, self._tail_key = event.id, key
        return len(events) >= READ_COUNT

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None and not waker.done():
            waker.set_result(None)

    async def _sleep(self, seconds: float) -> None:
        """Until something is pushed or notified, or ``seconds`` pass (a timer, not a task)."""
        loop = asyncio.get_running_loop()
        self._waker = waker = loop.create_future()
        timer = loop.call_later(seconds, _wake, waker)
        try:
            await waker
        finally:
            timer.cancel()
            self._waker = None


async def follow_task(
    source: EventSource,
    task_id: str,
    after: str,
    has_stream: bool,
    ended: task_pb2.TaskResult | None,
    status: Callable[[], Awaitable[task_pb2.TaskResult | None]],
) -> AsyncGenerator[StreamItem, None]:
    """A task's pieces after entry ``after``, replayed, then followed, then ``StreamEnd``.

    ``has_stream``: the task has an event stream (without one: wait for its result); ``ended``:
    its result when it had one already; ``status``: reads its result (None while pending),
    raising ``TaskNotFound`` once the task expired."""
    if not has_stream:
        result = ended
        while result is None:
            await asyncio.sleep(NO_STREAM_POLL_SECONDS)
            result = await status()
        yield StreamEnd(result)
        return
    cursor = after
    while True:
        # An ended task's stream is complete: read it without waiting.
        block_ms = 0 if ended is not None else 1_000_000
        events = await source.events_after(task_id, cursor, block_ms, READ_COUNT)
        for event in events:
            cursor = event.id
            item = stream_item(event)
            if item is not None:
                yield item
            elif event.final:
                result = ended or await status()
                if result is not None:
                    yield StreamEnd(result)
                    return
        if not events:
            if ended is not None:
                yield StreamEnd(ended)  # resumed after the last piece, or a stream cut short
                return
            ended = await status()  # still there? (an expired task raises TaskNotFound)


_Item = TypeVar("_Item")


class _Pump(Generic[_Item]):
    """Reads ``items`` ahead of its consumer, in a task of its own, into a queue of at most
    ``limit`` items (it waits while the queue is full). The consumer takes whatever is queued at
    once (``take``). Closing it cancels the read in progress, which ends ``items``; an
    ``items`` not running is closed instead."""

    def __init__(self, items: AsyncGenerator[_Item, None], limit: int) -> None:
        self._items = items
        self._limit = max(1, limit)
        self._queue: deque[_Item] = deque()
        self._error: BaseException | None = None
        self._ended = False
        self._ready: asyncio.Future[None] | None = None  # the consumer waits for items
        self._room: asyncio.Future[None] | None = None  # the reader waits for room
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for item in self._items:
                self._queue.append(item)
                if self._ready is not None:
                    _wake(self._ready)
                if len(self._queue) >= self._limit:
                    self._room = asyncio.get_running_loop().create_future()
                    await self._room
        except Exception as e:
            self._error = e
        finally:
            self._ended = True
            if self._ready is not None:
                _wake(self._ready)
            await self._items.aclose()  # a no-op unless it was waiting for room

    async def take(self, seconds: float) -> list[_Item] | None:
        """Every item queued, in order; waits up to ``seconds`` for one (then ``[]``). None
        after the last; an error ``items`` raised is raised after the items before it."""
        if not self._queue and not self._ended:
            loop = asyncio.get_running_loop()
            self._ready = ready = loop.create_future()
            timer = loop.call_later(seconds, _wake, ready)
            try:
                await ready
            finally:
                timer.cancel()
                self._ready = None
        if self._queue:
            batch = list(self._queue)
            self._queue.clear()
            if self._room is not None:
                _wake(self._room)
                self._room = None
            return batch
        if not self._ended:
            return []
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return None

    async def close(self) -> None:
        """Stop reading (see the class doc); returns once ``items`` has ended."""
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def batches_with_keepalives(
    items: AsyncGenerator[_Item, None], seconds: float, limit: int = DEFAULT_BUFFER
) -> AsyncGenerator[list[_Item], None]:
    """``items`` (a stream's items, or the parts of an SSE body) in lists of what is ready at
    once (at most ``limit``, in order), and an empty list each time ``seconds`` pass without
    one (an SSE keepalive comment keeps proxies from closing a quiet stream). A consumer that
    falls behind gets bigger lists, so it writes one answer per list, not per item.

    ``items`` is read in one task of its own (not a task per item): a quiet wait is not
    cancelled; when this iterator is closed or cancelled, the read in progress is cancelled,
    which ends ``items`` (a stream of ``Dispatcher.stream`` then asks its worker to stop),
    else ``items`` is closed."""
    pump = _Pump(items, limit)
    try:
        while (batch := await pump.take(seconds)) is not None:
            yield batch
    finally:
        await pump.close()


async def with_keepalives(
    items: AsyncGenerator[_Item, None], seconds: float
) -> AsyncGenerator[_Item | None, None]:
    """``items`` one by one, and None each time ``seconds`` pass without one; closing and
    cancelling as ``batches_with_keepalives``."""
    batches = batches_with_keepalives(items, seconds)
    try:
        async for batch in batches:
            if not batch:
                yield None
            for item in batch:
                yield item
    finally:
        await batches.aclose()


# Server-Sent Events (docs/api.md, "Streaming")

SSE_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""The headers of every Server-Sent Events answer (no proxy may cache or buffer it)."""

KEEPALIVE_SECONDS: Final = 15.0
"""How long a stream stays quiet before a keepalive comment."""

SSE_KEEPALIVE: Final = b": keepalive\n\n"


def sse_chunk(item: Chunk, data: dict[str, Any]) -> bytes:
    """A piece: ``id:`` its entry id, ``data:`` the response message as JSON (``data``)."""
    return b"id: " + item.id.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def sse_restart(item: Restart) -> bytes:
    """A restart marker: the pieces before it are void."""
    return (
        b"event: restart\nid: "
        + item.id.encode()
        + b"\ndata: "
        + orjson.dumps({"attempt": item.attempt})
        + b"\n\n"
    )


def sse_end(data: dict[str, Any]) -> bytes:
    """The end of a stream that succeeded (``data``: the endpoint's final JSON)."""
    return b"event: done\ndata: " + orjson.dumps(data) + b"\n\n"


def sse_error(body: dict[str, Any]) -> bytes:
    """The end of a stream that failed: the usual JSON error body."""
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
