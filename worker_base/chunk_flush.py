"""The pieces of every stream a worker runs, appended together: one flush at a time, so pieces
yielded while a flush is on the wire share the next round trip (as ``worker_base.settle`` does
for results).

A stream hands each piece over (``ChunkFlusher.add``) and gets a future of what appending it
answered (``AppendOutcome``: its event id, and whether the task is to stop). Pieces are appended
in the order they were handed over, so each stream's pieces keep theirs. With nothing in flight
a piece is appended at once: a lone stream waits for nothing.

Bounded: the flusher holds only pieces whose streams have not had them answered; each stream
waits once it has ``worker_base.streaming.STREAM_WINDOW`` pieces unanswered, so the flusher
holds at most that many per running stream. A flush takes at most ``max_flush`` pieces.

A flush that fails (Redis unreachable) fails the future of each of its pieces with that error,
and every later piece of those tasks is failed without being written (``discard`` forgets a
task), so a stream never has a hole: its run stops, and the next run of the task marks its
stream with a ``restart`` before its first piece (``conveyor.streams``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from conveyor.streams import AppendOutcome, ChunkAppend

__all__ = ["Append", "ChunkFlusher", "ChunkWriteFailed"]

logger = logging.getLogger(__name__)

Append = Callable[[Sequence[ChunkAppend]], Awaitable[list[AppendOutcome]]]
"""Appends pieces in order in one round trip, one outcome each (``ChunkWriter.append``)."""

MAX_FLUSH = 512
"""The most pieces one flush appends (one pipeline)."""


class ChunkWriteFailed(Exception):
    """A piece of a stream could not be appended (Redis unreachable, or an earlier piece of the
    same task failed): the run cannot go on; it is not the model's failure."""


class ChunkFlusher:
    """Appends handed-over pieces with ``append``, one flush at a time (see the module doc)."""

    def __init__(self, append: Append, max_flush: int = MAX_FLUSH) -> None:
        self._append = append
        self._max_flush = max_flush
        self._pending: list[tuple[ChunkAppend, asyncio.Future[AppendOutcome]]] = []
        self._failed: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """Pieces handed over and not yet in a flush."""
        return len(self._pending)

    def add(self, item: ChunkAppend) -> asyncio.Future[AppendOutcome]:
        """Hand a piece over; the future answers its outcome once it is appended (or fails with
        ``ChunkWriteFailed``). Cancelling the future does not withdraw the piece."""
        future: asyncio.Future[AppendOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return future

    def discard(self, task_id: str) -> None:
        """Forget that a flush failed for ``task_id`` (its run is over)."""
        self._failed.discard(task_id)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_flush]
                del self._pending[: self._max_flush]
                items = []
                for item, future in batch:
                    if item.task.task_id in self._failed:
                        _fail(future, ChunkWriteFailed("an earlier piece could not be appended"))
                    else:
                        items.append((item, future))
                if items:
                    await self._write(items)
        finally:
            self._flusher = None

    async def _write(self, items: list[tuple[ChunkAppend, asyncio.Future[AppendOutcome]]]) -> None:
        try:
            outcomes = await self._append([item for item, _ in items])
        except asyncio.CancelledError:
            for _, future in items:
                _fail(future, ChunkWriteFailed("the worker is stopping"))
            raise
        except Exception as e:
            logger.warning("appending %d pieces of streams failed: %s", len(items), e)
            for item, future in items:
                self._failed.add(item.task.task_id)
                _fail(future, ChunkWriteFailed(f"appending the piece failed: {e}"))
            return
        for (_, future), outcome in zip(items, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    async def close(self) -> None:
        """Stop a flush in progress (at shutdown); every piece not yet answered fails."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for _, future in self._pending:
            _fail(future, ChunkWriteFailed("the worker is stopping"))
        self._pending.clear()


def _fail(future: asyncio.Future[AppendOutcome], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
