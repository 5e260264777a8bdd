"""Submitting tasks to model queues and reading their results back from Redis."""

import time
import uuid
from dataclasses import dataclass

import aio_pika
import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from api.catalog import ModelInfo
from api.exceptions import ResultTimeout, TaskNotFound
from conveyor.amqp import connect_amqp, declare_model_queue
from conveyor.protocol import REPLY_CHANNEL_PREFIX, TASK_CONTENT_TYPE, result_key
from conveyor.results import ResultBackend, TaskRecord, now_ms
from conveyor.waiter import ResultWaiter
from proto import task_pb2


@dataclass(frozen=True)
class TaskStatus:
    """A task as ``GET /tasks/{id}`` reports it; ``result`` is set once it finished."""

    task_id: str
    model: str
    result: task_pb2.TaskResult | None


class Dispatcher:
    """Publishes ``Task`` envelopes (persistent) and waits for their ``TaskResult``."""

    def __init__(self, amqp_url: str, results: ResultBackend, result_ttl: int) -> None:
        self._amqp_url = amqp_url
        self._results = results
        self._result_ttl = result_ttl
        self.gateway_id = uuid.uuid4().hex
        self._waiter = ResultWaiter(results.redis, REPLY_CHANNEL_PREFIX + self.gateway_id)
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._declared: set[str] = set()

    async def start(self, connect_timeout: float) -> None:
        """Connect to RabbitMQ (waiting up to ``connect_timeout`` s for it, reconnecting on its
        own afterwards) and subscribe for notifications."""
        self._connection = await connect_amqp(self._amqp_url, connect_timeout)
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._waiter.start()

    async def stop(self) -> None:
        """Close every connection."""
        await self._waiter.stop()
        if self._connection is not None:
            await self._connection.close()
        await self._results.redis.aclose()

    async def ready(self) -> dict[str, bool]:
        """Report whether RabbitMQ and Redis are usable."""
        try:
            redis_ok = bool(await self._results.redis.ping())
        except (aioredis.RedisError, OSError):
            redis_ok = False
        amqp_ok = self._connection is not None and not self._connection.is_closed
        return {"rabbitmq": amqp_ok, "redis": redis_ok}

    async def submit(
        self, model: ModelInfo, payload: bytes, deadline_seconds: float, wait: bool
    ) -> str:
        """Record and publish a task for ``model``; return its id.

        With ``wait`` the task names this gateway's reply channel and is registered with the
        waiter before it is published, so its notification cannot be missed.
        """
        assert self._channel is not None, "Dispatcher.start() has not run"
        task_id = uuid.uuid4().hex
        now = now_ms()
        task = task_pb2.Task(
            task_id=task_id,
            model=model.name,
            payload=payload,
            deadline_unix_ms=now + int(deadline_seconds * 1000),
            result_key=result_key(task_id),
            reply_channel=self._waiter.channel if wait else "",
            result_ttl_seconds=self._result_ttl,
            created_unix_ms=now,
            attempt=1,
        )
        await self._results.record_task(
            task_id,
            TaskRecord(model=model.name, created_unix_ms=now),
            ttl_seconds=self._result_ttl + int(deadline_seconds) + 1,
        )
        if model.queue not in self._declared:
            await declare_model_queue(self._channel, model.name)
            self._declared.add(model.queue)
        if wait:
            self._waiter.register(task_id)
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                task.SerializeToString(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=TASK_CONTENT_TYPE,
                message_id=task_id,
                timestamp=now / 1000,
            ),
            routing_key=model.queue,
        )
        return task_id

    async def wait_result(self, task_id: str, model: str, seconds: float) -> task_pb2.TaskResult:
        """Wait for the result of a task submitted with ``wait``; raise ``ResultTimeout``."""
        try:
            deadline = time.monotonic() + seconds
            while True:
                result = await self._results.read(task_id)
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ResultTimeout(
                        f"no result within {seconds:g} s; poll /tasks/{task_id}",
                        model=model,
                        task_id=task_id,
                    )
                await self._waiter.wait(task_id, remaining)
        finally:
            self._waiter.discard(task_id)

    async def status(self, task_id: str) -> TaskStatus:
        """Return the task's model and result (None while pending); raise ``TaskNotFound``."""
        record = await self._results.task_record(task_id)
        result = await self._results.read(task_id)
        if record is not None:
            model = record.model
        elif result is not None:
            model = result.model
        else:
            raise TaskNotFound(f"unknown or expired task {task_id!r}")
        return TaskStatus(task_id=task_id, model=model, result=result)
