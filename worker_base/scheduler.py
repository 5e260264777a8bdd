"""Tasks delivered to a worker wait here, highest priority first, until a runner takes a batch.

The broker delivers from several queues at once (the fast lane, the durable lanes); taking from
one local heap lets a high-priority task overtake what was delivered before it, and lets a
runner collect a batch: up to ``max_size`` tasks, waiting at most ``max_delay`` seconds after
the first one for more to arrive.

Waiting only pays when other tasks come. After ``LONE_WAITS`` batches in a row that waited out
the whole delay and still held one task (a lone client, sparse traffic), the scheduler stops
waiting and hands out what is queued at once, as an unbatched worker would; the first time
that finds two or more tasks queued (traffic picked up), it waits again. Under load a wait
never ends alone, so batches form as before.

**Running at once.** A delivery that would be handed to an idle runner the moment it is queued
(nothing queued, a runner waiting, no batch to fill) may instead run in the task that took it
from the broker, with that runner's turn lent to it (``lend``): the same work one turn of the
loop sooner. The runners and the lent turns together never run more than the runners' number
of batches at once: a runner takes from the queue only while more runners wait than turns are
lent.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field

from aio_pika.abc import AbstractIncomingMessage

from conveyor.tracing import Span
from proto import task_pb2
from worker_base.settle import Pack

__all__ = ["LONE_WAITS", "Delivery", "Scheduler"]

LONE_WAITS = 3
"""Batches of one in a row, each after waiting out the whole delay, before the scheduler stops
waiting (see the module doc)."""


@dataclass(order=True)
class Delivery:
    """A delivered task: ordered by priority (highest first), then by arrival."""

    sort_key: tuple[int, int]
    task: task_pb2.Task = field(compare=False)
    message: AbstractIncomingMessage = field(compare=False)
    lane: str = field(compare=False)
    received: float = field(compare=False, default_factory=time.monotonic)
    settled: bool = field(compare=False, default=False)
    pack: Pack | None = field(compare=False, default=None)
    """The ``TaskBatch`` message's tasks this one is settled with; None for a message of one."""
    span: Span | None = field(compare=False, default=None)
    """Its process span while it is open (``worker_base.task_spans``); None: not traced."""
    store_span: Span | None = field(compare=False, default=None)
    """Its result's store span, from the hand-over until stored."""


class Scheduler:
    """A priority queue of deliveries that hands them out in batches."""

    def __init__(self) -> None:
        self._heap: list[Delivery] = []
        self._seq = itertools.count()
        self._ready = asyncio.Condition()
        self._collecting = asyncio.Lock()
        self._lone_waits = 0  # batches of one in a row that waited out the whole delay
        self._idle = 0  # runners in ``take``
        self._lent = 0  # their turns lent to deliveries running at once (``lend``)
        self.waiting = True
        """Whether a partial batch waits for more tasks (off after ``LONE_WAITS`` lone waits)."""

    def __len__(self) -> int:
        return len(self._heap)

    def make(
        self,
        task: task_pb2.Task,
        message: AbstractIncomingMessage,
        lane: str,
        pack: Pack | None = None,
        span: Span | None = None,
    ) -> Delivery:
        """Wrap a delivered task, numbered in arrival order (``span``: its process span)."""
        return Delivery(
            (-task.priority, next(self._seq)), task, message, lane, pack=pack, span=span
        )

    async def put(self, delivery: Delivery) -> None:
        """Add a delivery and wake a waiting runner."""
        async with self._ready:
            heapq.heappush(self._heap, delivery)
            self._ready.notify()

    async def take(self, max_size: int, max_delay: float) -> list[Delivery]:
        """Wait for a delivery, then return up to ``max_size`` of them, highest priority first.

        After the first one, waits up to ``max_delay`` seconds for the batch to fill; returns
        at once when it is full, or, while ``waiting`` is off, with what is queued. Runners
        take turns, so one batch fills at a time.
        """
        self._idle += 1
        try:
            return await self._take(max_size, max_delay)
        finally:
            self._idle -= 1

    def lend(self, batching: bool) -> bool:
        """Whether a delivery may run now in the caller's task instead of being queued: nothing
        is queued, a waiting runner has a turn to lend, and (``batching``) no batch waits to
        fill. True lends that turn until ``give_back``."""
        if self._heap or self._idle <= self._lent or (batching and self.waiting):
            return False
        self._lent += 1
        return True

    async def give_back(self) -> None:
        """Return a turn ``lend`` lent; a runner takes what was queued meanwhile."""
        self._lent -= 1
        if self._heap:
            async with self._ready:
                self._ready.notify()

    async def _take(self, max_size: int, max_delay: float) -> list[Delivery]:
        async with self._collecting, self._ready:
            await self._ready.wait_for(lambda: bool(self._heap) and self._idle > self._lent)
            waited = False
            if max_size > 1 and max_delay > 0 and len(self._heap) < max_size and self.waiting:
                waited = True
                deadline = time.monotonic() + max_delay
                while len(self._heap) < max_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        await asyncio.wait_for(self._ready.wait(), remaining)
                    except TimeoutError:
                        break
            count = min(max_size, len(self._heap))
            batch = [heapq.heappop(self._heap) for _ in range(count)]
            if self._heap:
                self._ready.notify()
            if max_size > 1:
                self._count_lone(count, waited)
            return batch

    def _count_lone(self, count: int, waited: bool) -> None:
        """Turn ``waiting`` off after ``LONE_WAITS`` lone waits in a row; on when a batch
        holds two or more."""
        if count > 1:
            self._lone_waits = 0
            self.waiting = True
        elif waited:
            self._lone_waits += 1
            if self._lone_waits >= LONE_WAITS:
                self.waiting = False
