"""Settling deliveries: a task is acknowledged only after its result is stored.

Every delivery the worker takes is settled exactly once, here, in one of three ways:

- **acknowledged**, once its result is stored (or was stored before: a redelivered task that is
  answered already);
- **returned to its queue** (``nack`` with requeue), when storing its result failed: the broker
  delivers it again and the next run stores it;
- **rejected** (dead-lettered where its queue says so), when the message is unusable or the task
  killed its workers too often (``Settler.dead_letter`` stores its error result first).

How results are stored and acknowledged (``Settler.commit``):

1. **Group commit.** Runners hand their finished tasks over and go on. One flush at a time
   stores everything handed over since the last one began, in one pipelined round trip
   (``ResultBackend.store_many``). With nothing in flight a result is stored at once, so an idle
   worker waits for nothing (a runner with nothing queued stores its own results: ``store_now``);
   under load, results that finish while a store is on the wire share the next one. The
   deliveries waiting here are bounded by the channel's prefetch.
2. **Multiple acks.** The stored flush's deliveries are acknowledged together: one
   ``basic.ack`` with ``multiple`` for each run of delivery tags with no other delivery of the
   channel still open below it (``Acknowledger``), the rest one by one, all in one turn of the
   loop. Acknowledging an open delivery below would lose it if the worker died before storing it.
3. **Whole ``TaskBatch`` messages.** A gateway may carry several synchronous tasks in one
   message (docs/protocol.md). Each task is a delivery of its own that shares the message
   (``Pack``); the broker knows only the message, so it is settled with its last open task:
   acknowledged, or returned to its queue when any of its tasks asked to be. On the redelivery
   the tasks already answered are not run again (their stored results are announced again).

A broker error while settling is logged, never raised: the broker returns every unsettled
delivery of a closed channel to its queue. While Redis is unreachable (``until_redis_answers``)
a computed result is held, its task unacknowledged, until it can be stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import redis.asyncio as aioredis
from aio_pika.abc import AbstractIncomingMessage

from proto import task_pb2
from worker_base import task_spans

if TYPE_CHECKING:
    from worker_base.scheduler import Delivery

__all__ = [
    "Acknowledgeable",
    "Acknowledger",
    "GroupCommit",
    "Pack",
    "Settler",
    "Store",
    "until_redis_answers",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

REDIS_RETRY_DELAY = 0.5
"""Seconds between two tries of a Redis call while Redis is unreachable."""

Store = Callable[[list[tuple[task_pb2.Task, task_pb2.TaskResult]]], Awaitable[None]]
"""Stores results (retrying while Redis is unreachable); raises only on an unexpected failure."""


async def until_redis_answers(call: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``call``, retrying while Redis is unreachable (logged once when it goes, once when it
    is back): a computed result is kept, its task unacknowledged, until it can be stored."""
    outage = False
    while True:
        try:
            value = await call()
        except (aioredis.RedisError, OSError) as e:
            if not outage:
                logger.warning("Redis unreachable (%s); holding results until it is back", e)
                outage = True
            await asyncio.sleep(REDIS_RETRY_DELAY)
            continue
        if outage:
            logger.warning("Redis back; results stored")
        return value


class Pack:
    """One ``TaskBatch`` message and how many of its tasks are still open."""

    def __init__(self, message: AbstractIncomingMessage, tasks: int) -> None:
        self.message = message
        self.open = tasks
        self.requeue = False
        """Whether a settled task asked for the message to go back to its queue."""

    def settle(self, requeue: bool) -> bool:
        """Settle one task; True when it was the last open one (settle the message now)."""
        if self.open <= 0:
            raise RuntimeError("every task of this message is settled already")
        self.requeue = self.requeue or requeue
        self.open -= 1
        return self.open == 0


class Acknowledgeable(Protocol):
    """A delivery as ``Acknowledger`` needs it (aio-pika's ``IncomingMessage`` is one)."""

    @property
    def delivery_tag(self) -> int | None:
        """The channel's number of this delivery."""

    @property
    def channel(self) -> Any:
        """The channel it came on (raises once that channel is closed)."""

    async def ack(self, multiple: bool = False) -> None:
        """Acknowledge this delivery (and, with ``multiple``, every open one below it)."""


def channel_of(message: Acknowledgeable) -> Hashable:
    """The channel a delivery came on; None once that channel is closed (its deliveries can no
    longer be acknowledged: the broker has returned them to their queues)."""
    try:
        channel: Hashable = message.channel
    except Exception:
        return None
    return channel


class Acknowledger:
    """Tracks the open deliveries per channel and acknowledges runs of them at once.

    RabbitMQ numbers a channel's deliveries (the delivery tag); ``basic.ack`` with ``multiple``
    acknowledges every delivery up to and including its tag that is still unsettled. ``ack``
    uses it only for the tags below the lowest delivery still open that is not being
    acknowledged. Tags are per channel: a channel reopened after a broker restart starts again
    from 1, and its deliveries are tracked apart from the closed channel's.
    """

    def __init__(self) -> None:
        self._open: dict[Hashable, set[int]] = {}

    def open_count(self) -> int:
        """How many deliveries are open (delivered, not yet settled)."""
        return sum(len(tags) for tags in self._open.values())

    def opened(self, message: Acknowledgeable) -> None:
        """A delivery arrived; it stays open until ``closed`` or acknowledged here."""
        tag = message.delivery_tag
        if tag is None:
            return
        channel = channel_of(message)
        tags = self._open.get(channel)
        if tags is None:  # a new channel (rare): forget the deliveries of closed ones
            for gone in [c for c in self._open if c is None or getattr(c, "is_closed", False)]:
                del self._open[gone]
            tags = self._open[channel] = set()
        tags.add(tag)

    def closed(self, message: Acknowledgeable) -> None:
        """A delivery was settled some other way (rejected, requeued, acknowledged alone)."""
        channel = channel_of(message)
        tags = self._open.get(channel)
        if tags is not None and message.delivery_tag is not None:
            tags.discard(message.delivery_tag)
            if not tags:
                del self._open[channel]

    async def ack(self, messages: Sequence[Acknowledgeable]) -> list[BaseException | None]:
        """Acknowledge ``messages``, each run of them that no other open delivery interrupts
        with one ``multiple`` ack; returns each message's failure (None where it succeeded)."""
        calls: list[tuple[list[int], Acknowledgeable, bool]]
        if len(messages) == 1:  # a lone task's: nothing to group
            self.closed(messages[0])
            calls = [([0], messages[0], False)]
        else:
            calls = self._runs(messages)
        outcomes: list[BaseException | None]
        if len(calls) == 1:  # one ack: awaited in this task, no task of its own to wait for
            try:
                await calls[0][1].ack(multiple=calls[0][2])
                outcomes = [None]
            except Exception as e:
                outcomes = [e]
        else:
            # All at once: frames written in one turn of the loop leave in one socket write.
            outcomes = await asyncio.gather(
                *(message.ack(multiple=multiple) for _, message, multiple in calls),
                return_exceptions=True,
            )
        failures: list[BaseException | None] = [None] * len(messages)
        for (indexes, _, _), outcome in zip(calls, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                for i in indexes:
                    failures[i] = outcome
        return failures

    def _runs(
        self, messages: Sequence[Acknowledgeable]
    ) -> list[tuple[list[int], Acknowledgeable, bool]]:
        """The acks ``messages`` need, each (the indexes it settles, the message acknowledged,
        whether ``multiple``), closing every message here."""
        groups: dict[Hashable, list[int]] = {}
        for i, message in enumerate(messages):
            groups.setdefault(channel_of(message), []).append(i)
        calls: list[tuple[list[int], Acknowledgeable, bool]] = []
        for channel, indexes in groups.items():
            tags = {i: messages[i].delivery_tag or 0 for i in indexes}
            open_tags = self._open.get(channel, set())
            open_tags.difference_update(tags.values())  # settled here, whatever the broker says
            if not open_tags:
                self._open.pop(channel, None)
            lowest_other = min(open_tags, default=math.inf)
            covered = [i for i in indexes if tags[i] < lowest_other]
            alone = [i for i in indexes if tags[i] >= lowest_other]
            if len(covered) > 1:
                top = max(covered, key=tags.__getitem__)
                calls.append((covered, messages[top], True))
            else:
                alone += covered
            calls += [([i], messages[i], False) for i in alone]
        return calls


class GroupCommit:
    """Stores handed-over results in batches, one flush at a time, then settles their deliveries.

    ``store`` stores a batch (retrying while Redis is away); ``settle(deliveries, stored)``
    acknowledges the stored batch's tasks, or requeues them when the store failed unexpectedly.
    A delivery is settled only after the flush that holds its result.
    """

    def __init__(
        self, store: Store, settle: Callable[[list[Delivery], bool], Awaitable[None]]
    ) -> None:
        self._store = store
        self._settle = settle
        self._pending: list[tuple[Delivery, task_pb2.TaskResult]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._storing = False  # a ``store_now`` is on the wire

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def idle(self) -> bool:
        """No store on the wire and nothing handed over: results stored now go out at once."""
        return self._flusher is None and not self._storing and not self._pending

    def add(self, items: Sequence[tuple[Delivery, task_pb2.TaskResult]]) -> None:
        """Hand over finished tasks; they are stored with the next flush (a traced task's store
        span starts now)."""
        _storing_spans(items)
        self._pending.extend(items)
        if self._flusher is None and not self._storing:
            self._flusher = asyncio.create_task(self._flush())

    async def store_now(self, items: Sequence[tuple[Delivery, task_pb2.TaskResult]]) -> None:
        """Store and settle ``items`` in the caller's task, when ``idle``: a runner with nothing
        queued carries its own results to Redis instead of handing them to a flush task (one
        turn of the loop sooner). Results handed over meanwhile go with the next flush."""
        if not self.idle:
            raise RuntimeError("store_now while a store is on the wire: use add")
        _storing_spans(items)
        self._storing = True
        try:
            await self._store_and_settle(list(items))
        finally:
            self._storing = False
            if self._pending and self._flusher is None:
                self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                items, self._pending = self._pending, []
                await self._store_and_settle(items)
        finally:
            self._flusher = None

    async def _store_and_settle(self, items: list[tuple[Delivery, task_pb2.TaskResult]]) -> None:
        try:
            await self._store([(d.task, r) for d, r in items])
            stored = True
        except Exception:
            logger.exception("storing %d results failed; requeueing them", len(items))
            stored = False
        for delivery, _ in items:
            if delivery.store_span is not None:
                task_spans.stored(delivery.store_span, stored)
                delivery.store_span = None
        await self._settle([delivery for delivery, _ in items], stored)

    async def close(self) -> None:
        """Stop a flush in progress (at shutdown, after the grace period)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher


class Settler:
    """Settles every delivery of one worker exactly once, and knows how many are still open.

    The worker's intake calls ``opened`` for each message it takes; a message is then settled
    through ``commit`` (its result computed), ``release`` (answered before, or its run failed),
    ``reject`` or ``dead_letter``. ``drained`` waits until none is open.
    """

    def __init__(self, store: Store) -> None:
        self.acks = Acknowledger()
        self.commits = GroupCommit(store, self._stored)
        self._store = store
        self.unsettled = 0
        """Messages taken and not yet settled (a ``TaskBatch`` message counts once)."""
        self._idle = asyncio.Event()
        self._idle.set()

    def opened(self, message: AbstractIncomingMessage) -> None:
        """A message was delivered: it is open until settled here."""
        self.unsettled += 1
        self._idle.clear()
        self.acks.opened(message)

    def commit(self, items: Sequence[tuple[Delivery, task_pb2.TaskResult]]) -> None:
        """Hand over finished tasks: stored with the next flush, then acknowledged (or returned
        to their queue if the store failed)."""
        self.commits.add(items)

    async def release(self, deliveries: Sequence[Delivery], *, requeue: bool) -> None:
        """Settle each delivery once without storing anything: acknowledged (its result is
        stored already), together where ``acks`` can, or returned to its queue. A packed task
        settles its message with the last open task of it, returning it if any of them asked."""
        acking: list[AbstractIncomingMessage] = []
        returning: list[AbstractIncomingMessage] = []
        for delivery in deliveries:
            if delivery.settled:
                continue
            delivery.settled = True
            if delivery.span is not None:
                task_spans.settled(delivery.span, requeue)
                delivery.span = None
            pack = delivery.pack
            if pack is None:
                (returning if requeue else acking).append(delivery.message)
            elif pack.settle(requeue):
                (returning if pack.requeue else acking).append(pack.message)
        if returning:
            await asyncio.gather(*(self._alone(m, _requeue(m)) for m in returning))
        if not acking:
            return
        failures = await self.acks.ack(acking)
        for failure in failures:
            if failure is not None:
                logger.warning("could not settle a delivery: %s", failure)
            self._done()

    async def reject(self, message: AbstractIncomingMessage) -> None:
        """Reject an unusable message for good (dead-lettered where its queue says so)."""
        await self._alone(message, functools.partial(message.reject, requeue=False))

    async def dead_letter(
        self, message: AbstractIncomingMessage, task: task_pb2.Task, result: task_pb2.TaskResult
    ) -> None:
        """Store ``result`` (the task's error), then reject its message to the dead letters."""
        await self._store([(task, result)])
        await self.reject(message)

    async def drained(self) -> None:
        """Wait until no message is open."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop a flush in progress: its deliveries stay open, the broker redelivers them."""
        await self.commits.close()

    async def _stored(self, deliveries: list[Delivery], stored: bool) -> None:
        """Acknowledge tasks whose results are stored; requeue them when their store failed."""
        await self.release(deliveries, requeue=not stored)

    async def _alone(
        self, message: AbstractIncomingMessage, action: Callable[[], Awaitable[None]]
    ) -> None:
        """Settle one message by ``action``; a broker error is logged, never raised."""
        self.acks.closed(message)
        try:
            await action()
        except Exception as e:
            logger.warning("could not settle a delivery: %s", e)
        finally:
            self._done()

    def _done(self) -> None:
        self.unsettled -= 1
        if self.unsettled == 0:
            self._idle.set()


def _storing_spans(items: Sequence[tuple[Delivery, task_pb2.TaskResult]]) -> None:
    """Start the store span of each traced task among ``items``."""
    for delivery, _ in items:
        if delivery.span is not None:
            delivery.store_span = task_spans.storing(delivery.span)


def _requeue(message: AbstractIncomingMessage) -> Callable[[], Awaitable[None]]:
    """Settling ``message`` by returning it to its queue."""
    return functools.partial(message.nack, requeue=True)
