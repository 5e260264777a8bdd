"""Group commit of task results: stored in as few Redis round trips as the load allows.

A runner hands its finished tasks to ``GroupCommit`` and goes on with the next ones. One
flush at a time stores everything handed over since the last one began, in one pipelined round
trip (``ResultBackend.store_many``), then acknowledges those deliveries together
(``worker_base.acks``). With nothing in flight a result is stored at once, so an idle worker
adds no latency; under load, results that finish while a store is on the wire share the next
one. A task is still acknowledged only after its
result is stored, and the deliveries waiting here are bounded by the channel's prefetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from proto import task_pb2
from worker_base.scheduler import Delivery

__all__ = ["GroupCommit"]

logger = logging.getLogger(__name__)

Store = Callable[[list[tuple[task_pb2.Task, task_pb2.TaskResult]]], Awaitable[None]]
Settle = Callable[[list[Delivery], bool], Awaitable[None]]


class GroupCommit:
    """Stores handed-over results in batches, then settles their deliveries.

    ``store`` stores a batch (retrying while Redis is away); ``settle(deliveries, stored)``
    acknowledges the stored batch's tasks, or requeues them when the store failed unexpectedly.
    """

    def __init__(self, store: Store, settle: Settle) -> None:
        self._store = store
        self._settle = settle
        self._pending: list[tuple[Delivery, task_pb2.TaskResult]] = []
        self._flusher: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, items: Sequence[tuple[Delivery, task_pb2.TaskResult]]) -> None:
        """Hand over finished tasks; they are stored with the next flush."""
        self._pending.extend(items)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                items, self._pending = self._pending, []
                try:
                    await self._store([(d.task, r) for d, r in items])
                    stored = True
                except Exception:
                    logger.exception("storing %d results failed; requeueing them", len(items))
                    stored = False
                await self._settle([delivery for delivery, _ in items], stored)
        finally:
            self._flusher = None

    async def close(self) -> None:
        """Stop a flush in progress (at shutdown, after the grace period)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
