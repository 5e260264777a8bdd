"""Scheduling retries: a task that failed retryably waits in the delay lane, not in the worker.

``Executor`` decides which tasks to retry and how long each waits (``worker_base.retry_policy``);
the runner hands those to ``RetryScheduler.schedule`` and goes on with its next batch. For each
one, in the background:

1. its next attempt is published to the delay lane (``DelayLane``: the version's delay queue of
   that delay, persistent, ``mandatory`` and confirmed), where it waits the delay and is then
   dead-lettered back to its durable lane (``.high`` for priorities 5-9), also a synchronous
   task, which keeps its reply channel (docs/protocol.md);
2. an asynchronous task's ``retrying`` event is written (``ResultBackend.retrying``: its event
   stream and its new place in line), held while Redis is unreachable;
3. the failed attempt's delivery is acknowledged through the ``Settler``, so it is settled once.

If the delay lane does not confirm the publish, the delivery goes back to its queue instead and
is run again. A worker that dies between steps 1 and 3 leaves both the retry and the delivery:
the task may run once more than needed, and the first stored result wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractExchange

from conveyor import logs
from conveyor.metrics import WorkerMetrics
from conveyor.protocol import HIGH_PRIORITY, TASK_CONTENT_TYPE, delay_exchange, durable_queue
from conveyor.results import ResultBackend
from proto import task_pb2
from worker_base.retry_policy import Retry
from worker_base.scheduler import Delivery
from worker_base.settle import Settler, until_redis_answers
from worker_base.task_spans import retry_publish

__all__ = ["PUBLISH_TIMEOUT", "AmqpDelayLane", "DelayLane", "RetryScheduler"]

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 10.0
"""Seconds the delay lane may take to confirm a retry before its delivery goes back instead."""


class DelayLane(Protocol):
    """Where a task waits before it runs again."""

    async def publish(self, task: task_pb2.Task, delay_ms: int) -> None:
        """Hold ``task`` for ``delay_ms`` (one of the lane's delays), then return it to its
        durable lane; returns once the broker has it, raises if it could not take it."""


class AmqpDelayLane:
    """A model version's delay queues on RabbitMQ, published to with confirms.

    ``exchanges``: the delay exchange of each delay, on a channel opened with publisher
    confirms and ``on_return_raises`` (a missing queue is an error, not a silent drop)."""

    def __init__(self, model: str, version: str, exchanges: Mapping[int, AbstractExchange]) -> None:
        self.model = model
        self.version = version
        self.exchanges = dict(exchanges)

    @classmethod
    async def open(
        cls, channel: AbstractChannel, model: str, version: str, delays_ms: Sequence[int]
    ) -> AmqpDelayLane:
        """The lane of the delays ``delays_ms``, whose exchanges exist (declared with the
        version's queues)."""
        exchanges = {
            delay: await channel.get_exchange(delay_exchange(delay)) for delay in delays_ms
        }
        return cls(model, version, exchanges)

    async def publish(self, task: task_pb2.Task, delay_ms: int) -> None:
        """Publish ``task`` persistent to the delay queue of ``delay_ms``, routed by the name of
        the durable lane it goes back to; wait for the confirm."""
        lane = durable_queue(self.model, self.version, high=task.priority >= HIGH_PRIORITY)
        message = Message(
            task.SerializeToString(),
            content_type=TASK_CONTENT_TYPE,
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=task.task_id,
            priority=task.priority,
        )
        await self.exchanges[delay_ms].publish(
            message, routing_key=lane, mandatory=True, timeout=PUBLISH_TIMEOUT
        )


class RetryScheduler:
    """Moves retried tasks to the delay lane and settles their deliveries (the module doc),
    without holding up the runner that hands them over."""

    def __init__(
        self, lane: DelayLane, settler: Settler, results: ResultBackend, metrics: WorkerMetrics
    ) -> None:
        self.lane = lane
        self.settler = settler
        self.results = results
        self.metrics = metrics
        self._running: set[asyncio.Task[None]] = set()

    def schedule(self, retries: Sequence[tuple[Delivery, Retry]]) -> None:
        """Hand over failed deliveries with their retries; each is settled in the background."""
        for delivery, retry in retries:
            running = asyncio.create_task(self._retry(delivery, retry))
            self._running.add(running)
            running.add_done_callback(self._running.discard)

    async def close(self) -> None:
        """Stop the retries in progress (at shutdown, after the grace period): their deliveries
        stay open, the broker delivers them again."""
        for running in list(self._running):
            running.cancel()
        for running in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await running

    async def _retry(self, delivery: Delivery, retry: Retry) -> None:
        task = delivery.task
        with logs.bound(task.request_id, task.task_id, task.model, task.version):
            try:
                if delivery.span is not None:
                    queue = delay_exchange(retry.delay_ms)
                    with retry_publish(delivery.span, retry.task, queue, retry.delay_ms):
                        await self.lane.publish(retry.task, retry.delay_ms)
                else:
                    await self.lane.publish(retry.task, retry.delay_ms)
            except Exception as e:
                logger.warning(
                    "the delay lane did not take the retry of task %s (%s: %s); returning it "
                    "to its queue",
                    task.task_id,
                    type(e).__name__,
                    e,
                )
                await self.settler.release([delivery], requeue=True)
                return
            if not task.reply_channel:  # asynchronous: it has an event stream and a place in line

                async def note() -> int:
                    return await self.results.retrying(task, retry.error, retry.delay_ms)

                await until_redis_answers(note)
            await self.settler.release([delivery], requeue=False)
            self.metrics.retries.inc()
