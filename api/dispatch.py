"""Running tasks: submitting them to a model version's queues and getting their results back.

A synchronous task is published (``api.publisher``) and its result comes back in the worker's
notification (``conveyor.waiter``), or is read from Redis once the wait ends. An asynchronous
task is recorded in Redis first (so ``GET /tasks/{id}`` can follow it) and then published to a
durable lane; its status is read from Redis, and a task still queued can be cancelled. A Redis
outage is a 503.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel

from api.catalog import ModelInfo
from api.drain import RetryAdvice
from api.exceptions import Overloaded, ResultTimeout, ServiceUnavailable, TaskConflict, TaskNotFound
from api.publisher import PUBLISH_CHANNELS, Publisher, QueueDepths
from conveyor import logs
from conveyor.protocol import events_key, reply_channel, result_key, task_key
from conveyor.results import CancelOutcome, ResultBackend, TaskRecord, now_ms
from conveyor.waiter import ResultWaiter
from proto import task_pb2

__all__ = ["Dispatcher", "QueueDepths", "TaskStatus", "new_task_id"]

logger = logging.getLogger(__name__)

_REDIS_ERRORS = (aioredis.RedisError, OSError)


@dataclass(frozen=True)
class TaskStatus:
    """A task as ``GET /tasks/{id}`` reports it; ``result`` is set once it finished."""

    task_id: str
    model: str
    version: str
    result: task_pb2.TaskResult | None
    record: TaskRecord | None = None


def new_task_id() -> str:
    """A new task id: 128 random bits as hex, as uuid4 has (a task id is what GET /tasks/{id}
    asks for), without building a UUID object on every request."""
    return secrets.token_hex(16)


class Dispatcher:
    """Publishes ``Task`` envelopes and waits for, reads and cancels their ``TaskResult``."""

    def __init__(
        self,
        amqp_url: str,
        results: ResultBackend,
        result_ttl: int,
        sync_durable: bool = False,
        retry_after: int = 1,
        waiter: ResultWaiter | None = None,
        channel: AbstractChannel | None = None,
        publish_channels: int = PUBLISH_CHANNELS,
        advice: RetryAdvice | None = None,
    ) -> None:
        """``waiter`` and ``channel`` replace the Redis subscription and the RabbitMQ channels
        (unit tests pass small fakes; ``start`` is then not called). ``publish_channels``:
        how many channels publish tasks. ``advice``: the ``Retry-After`` of a full queue from
        its drain rate (else ``retry_after``)."""
        self._results = results
        self._result_ttl = result_ttl
        self._sync_durable = sync_durable
        self._retry_after = retry_after
        self.gateway_id = uuid.uuid4().hex
        self._waiter = waiter or ResultWaiter(results.redis, reply_channel(self.gateway_id))
        self.publisher = Publisher(
            amqp_url, retry_after=retry_after, channel=channel, publish_channels=publish_channels
        )
        self.advice = advice

    async def start(self, connect_timeout: float) -> None:
        """Connect to RabbitMQ (waiting up to ``connect_timeout`` s for it, reconnecting on its
        own afterwards) and subscribe for results."""
        await self.publisher.start(connect_timeout)
        await self._waiter.start()

    async def stop(self) -> None:
        """Close every connection."""
        await self._waiter.stop()
        await self.publisher.stop()
        await self._results.redis.aclose()

    async def ready(self) -> dict[str, bool]:
        """Report whether RabbitMQ and Redis are usable."""
        try:
            redis_ok = bool(await self._results.redis.ping())
        except _REDIS_ERRORS:
            redis_ok = False
        amqp_ok = self.publisher.ready()
        return {"rabbitmq": amqp_ok, "redis": redis_ok and self._waiter.connected}

    def _task(
        self,
        info: ModelInfo,
        payload: bytes,
        deadline_ms: int,
        priority: int,
        request_id: str,
        reply: str,
        task_id: str | None = None,
    ) -> task_pb2.Task:
        task_id = task_id or new_task_id()
        logs.note(info.name, info.version, task_id)  # the request's log lines and metrics
        return task_pb2.Task(
            task_id=task_id,
            model=info.name,
            version=info.version,
            payload=payload,
            deadline_unix_ms=deadline_ms,
            result_key=result_key(task_id),
            reply_channel=reply,
            result_ttl_seconds=self._result_ttl,
            created_unix_ms=now_ms(),
            attempt=1,
            priority=priority,
            request_id=request_id,
        )

    async def run(
        self,
        info: ModelInfo,
        payload: bytes,
        *,
        seconds: float,
        priority: int = 0,
        request_id: str = "",
        max_retries: int | None = None,
    ) -> task_pb2.TaskResult:
        """Run a task synchronously: publish it, wait up to ``seconds`` for its result
        (``max_retries``: its retries after retryable failures; None: the model's default).

        On a timeout the task is recorded (so ``GET /tasks/{id}`` can follow it) and
        ``ResultTimeout`` names it.
        """
        deadline = time.monotonic() + seconds
        task = self._task(
            info, payload, now_ms() + int(seconds * 1000), priority, request_id,
            self._waiter.channel,
        )  # fmt: skip
        if max_retries is not None:
            task.max_retries = max_retries
        self._waiter.register(task.task_id)
        try:
            try:
                if self._sync_durable:
                    await self.publisher.publish(info, task, durable=True, seconds=seconds)
                else:
                    await self.publisher.publish_sync(info, task, seconds)
            except Overloaded as e:
                await self._advise(e, info)
                raise
            while True:
                remaining = deadline - time.monotonic()
                result = await self._waiter.wait(task.task_id, remaining) if remaining > 0 else None
                if result is None:
                    result = await self._read(task.task_id)
                if result is not None:
                    return result
                if deadline - time.monotonic() <= 0:
                    await self._record(task, info)
                    raise ResultTimeout(
                        f"no result within {seconds:g} s; poll /tasks/{task.task_id}",
                        model=info.name,
                        task_id=task.task_id,
                    )
        finally:
            self._waiter.discard(task.task_id)

    async def submit(
        self, info: ModelInfo, payload: bytes, *, deadline: float, priority: int = 0,
        request_id: str = "", task_id: str | None = None, callback_url: str = "",
        max_retries: int | None = None,
    ) -> str:  # fmt: skip
        """Record and publish an asynchronous task (durable lane); return its id (``task_id``
        when given, else a new one).

        The task gets an event stream (``conveyor.events``, started with ``queued``); its final
        status is POSTed to ``callback_url`` when given; ``max_retries`` (None: the model's
        default) bounds its retries after retryable failures."""
        task = self._task(
            info, payload, now_ms() + int(deadline * 1000), priority, request_id, "", task_id
        )
        task.events_key = events_key(task.task_id)
        task.callback_url = callback_url
        if max_retries is not None:
            task.max_retries = max_retries
        await self._record(task, info, submitted=True)
        try:
            try:
                await self.publisher.publish(info, task, durable=True, seconds=None)
            except Overloaded as e:
                await self._advise(e, info)
                raise
        except BaseException:
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._results.redis.delete(task_key(task.task_id))
            raise
        return task.task_id

    async def _advise(self, error: Overloaded, info: ModelInfo) -> None:
        """Give ``error`` (a full queue) the ``Retry-After`` its drain rate advises."""
        if self.advice is not None:
            error.retry_after = await self.advice.retry_after(
                info.name, info.version, error.retry_after
            )

    async def _record(self, task: task_pb2.Task, info: ModelInfo, submitted: bool = False) -> None:
        """Record the task (a submit: also its event stream and place in line)."""
        record = TaskRecord(
            model=info.name,
            version=info.version,
            created_unix_ms=task.created_unix_ms,
            deadline_unix_ms=task.deadline_unix_ms,
            events=bool(task.events_key),
            callback_url=task.callback_url,
        )
        ttl = self._result_ttl + max(0, (task.deadline_unix_ms - now_ms()) // 1000) + 1
        try:
            if submitted:
                await self._results.submit(task.task_id, record, int(ttl))
            else:
                await self._results.record_task(task.task_id, record, int(ttl))
        except _REDIS_ERRORS as e:
            raise self._redis_down(e, info.name) from e

    async def _read(self, task_id: str) -> task_pb2.TaskResult | None:
        try:
            return await self._results.read(task_id)
        except _REDIS_ERRORS:
            return None  # Redis is away: the waiter keeps waiting until the deadline

    def _redis_down(self, error: Exception, model: str | None = None) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"Redis is unreachable: {type(error).__name__}", dependency="redis", model=model,
            retry_after=self._retry_after,
        )  # fmt: skip

    async def status(self, task_id: str) -> TaskStatus:
        """Return the task's model, version and result (None while pending)."""
        try:
            record, result = await self._results.status(task_id)
        except _REDIS_ERRORS as e:
            raise self._redis_down(e) from e
        if record is None and result is None:
            raise TaskNotFound(f"unknown or expired task {task_id!r}")
        model = record.model if record is not None else result.model if result else ""
        version = record.version if record is not None and record.version else ""
        if not version and result is not None:
            version = result.version
        logs.note(model, version, task_id)  # the request's log lines and metrics
        return TaskStatus(task_id, model, version, result, record)

    async def cancel(self, task_id: str) -> TaskStatus:
        """Cancel a task still queued; raise ``TaskConflict`` if it finished or runs."""
        status = await self.status(task_id)
        cancelled = task_pb2.TaskResult(task_id=task_id, model=status.model, version=status.version)
        cancelled.error.code = task_pb2.TaskError.CANCELLED
        cancelled.error.message = "cancelled before a worker ran it"
        cancelled.finished_unix_ms = now_ms()
        try:
            outcome, existing = await self._results.cancel(
                task_id, cancelled, self._result_ttl, status.record
            )
        except _REDIS_ERRORS as e:
            raise self._redis_down(e) from e
        if outcome is CancelOutcome.RUNNING:
            raise TaskConflict(
                f"task {task_id!r} is running; it can no longer be cancelled",
                task_id=task_id,
                status="running",
            )
        if outcome is CancelOutcome.FINISHED:
            assert existing is not None
            if existing.WhichOneof("outcome") == "error" and (
                existing.error.code == task_pb2.TaskError.CANCELLED
            ):
                return TaskStatus(task_id, status.model, status.version, existing, status.record)
            raise TaskConflict(
                f"task {task_id!r} has finished; there is nothing to cancel",
                task_id=task_id,
                status="done" if existing.WhichOneof("outcome") == "response" else "failed",
            )
        return TaskStatus(task_id, status.model, status.version, cancelled, status.record)

    async def queued(self, model: str, version: str) -> int | None:
        """Ready tasks in the version's lanes; None if unknown."""
        depths = await self.publisher.queue_depths(model, version)
        return None if depths is None else depths.queued

    async def queue_depths(self, model: str, version: str) -> QueueDepths | None:
        """Ready tasks in the version's lanes and the model's dead letters; None if unknown."""
        return await self.publisher.queue_depths(model, version)
