"""Running tasks: submitting them to a model version's queues and getting their results back.

A synchronous task is published (``api.publisher``) and its result comes back in the worker's
notification (``conveyor.waiter``), or is read from Redis once the wait ends. An asynchronous
task is recorded in Redis first (so ``GET /tasks/{id}`` can follow it) and then published to a
durable lane; its status is read from Redis, and a task still queued can be cancelled. A Redis
outage is a 503.

A streamed task (``stream``: synchronous; ``follow``: any task, from any gateway) yields its
pieces as they come (``api.streaming``), then its end. Streams wait like ``?wait=`` does: each
holds one of ``MAX_WAITING`` places (``events``, the ``EventSource``), not a ``MAX_INFLIGHT`` one.

With tracing on (``conveyor.tracing``), a task published inside a sampled span (the request's)
carries that span's context (``Task.trace_context``) and its publish time; the publish is a
producer span, and a synchronous task's wait for its result a span that ends with the
notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel

from api.catalog import ModelInfo
from api.drain import RetryAdvice
from api.exceptions import Overloaded, ResultTimeout, ServiceUnavailable, TaskConflict, TaskNotFound
from api.publisher import PUBLISH_CHANNELS, Publisher, QueueDepths
from api.streaming import (
    DEFAULT_BUFFER,
    ChunkReader,
    EventSource,
    StreamEnd,
    StreamItem,
    follow_task,
)
from conveyor import logs, tracing
from conveyor.metrics import GatewayMetrics, StreamSeries
from conveyor.protocol import (
    HIGH_PRIORITY,
    chunk_channel,
    durable_queue,
    events_key,
    reply_channel,
    result_key,
    sync_queue,
    task_key,
)
from conveyor.results import CancelOutcome, ResultBackend, TaskRecord, now_ms
from conveyor.streams import Chunk, request_stop
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
        events: EventSource | None = None,
        metrics: GatewayMetrics | None = None,
        stream_buffer: int = DEFAULT_BUFFER,
    ) -> None:
        """``waiter`` and ``channel`` replace the Redis subscription and the RabbitMQ channels
        (unit tests pass small fakes; ``start`` is then not called). ``publish_channels``:
        how many channels publish tasks. ``advice``: the ``Retry-After`` of a full queue from
        its drain rate (else ``retry_after``). ``events``: reads of event streams and the bound
        on waiting requests (needed by ``stream`` and ``follow``); ``metrics``: the streams'
        series; ``stream_buffer``: pushed pieces a stream holds for a slow consumer."""
        self._results = results
        self._result_ttl = result_ttl
        self._sync_durable = sync_durable
        self._retry_after = retry_after
        self.gateway_id = uuid.uuid4().hex
        self._waiter = waiter or ResultWaiter(
            results.redis,
            reply_channel(self.gateway_id),
            chunk_channel=chunk_channel(self.gateway_id),
        )
        self.publisher = Publisher(
            amqp_url, retry_after=retry_after, channel=channel, publish_channels=publish_channels
        )
        self.advice = advice
        self.events = events
        self.metrics = metrics
        self.stream_buffer = stream_buffer
        self._stopping: set[asyncio.Task[None]] = set()

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
                await self._publish(info, task, durable=self._sync_durable, seconds=seconds,
                                    packed=not self._sync_durable)  # fmt: skip
            except Overloaded as e:
                await self._advise(e, info)
                raise
            if task.trace_context:
                return await self._traced_wait(info, task, deadline, seconds)
            return await self._wait(info, task, deadline, seconds)
        finally:
            self._waiter.discard(task.task_id)

    async def _traced_wait(
        self, info: ModelInfo, task: task_pb2.Task, deadline: float, seconds: float
    ) -> task_pb2.TaskResult:
        """``_wait`` in a span: from the publish's confirm to the result (its notification, or
        its read once the wait ended)."""
        assert tracing.tracer is not None
        with tracing.tracer.start_as_current_span(
            "wait result", attributes={tracing.TASK_ID: task.task_id}
        ):
            return await self._wait(info, task, deadline, seconds)

    async def _wait(
        self, info: ModelInfo, task: task_pb2.Task, deadline: float, seconds: float
    ) -> task_pb2.TaskResult:
        """The result of the published ``task``: notified, or read once the wait ends; past
        ``deadline`` the task is recorded and ``ResultTimeout`` names it."""
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

    async def _publish(
        self, info: ModelInfo, task: task_pb2.Task, *, durable: bool, seconds: float | None,
        packed: bool = False,
    ) -> None:  # fmt: skip
        """Publish ``task`` (``packed``: a synchronous task that may share a message; else alone,
        to a durable lane or the fast lane); traced in a producer span when tracing is on and the
        current span is sampled."""
        tracer = tracing.tracer
        if tracer is not None and tracing.current_sampled():
            queue = (
                durable_queue(info.name, info.version, high=task.priority >= HIGH_PRIORITY)
                if durable
                else sync_queue(info.name, info.version)
            )
            tracing.inject(task.trace_context)  # the request's span: the worker's parent
            with tracer.start_as_current_span(
                f"send {queue}",
                kind=tracing.SpanKind.PRODUCER,
                attributes=tracing.publish_attributes(
                    queue,
                    task.task_id,
                    {
                        tracing.MODEL: info.name,
                        tracing.VERSION: info.version,
                        tracing.TASK_ID: task.task_id,
                    },
                ),
            ):
                task.published_unix_nano = time.time_ns()
                await self._publish_untraced(info, task, durable, seconds, packed)
            return
        await self._publish_untraced(info, task, durable, seconds, packed)

    async def _publish_untraced(
        self, info: ModelInfo, task: task_pb2.Task, durable: bool, seconds: float | None,
        packed: bool,
    ) -> None:  # fmt: skip
        if packed and seconds is not None:
            await self.publisher.publish_sync(info, task, seconds)
        else:
            await self.publisher.publish(info, task, durable=durable, seconds=seconds)

    async def stream(
        self,
        info: ModelInfo,
        payload: bytes,
        *,
        seconds: float,
        priority: int = 0,
        request_id: str = "",
        max_retries: int | None = None,
    ) -> AsyncGenerator[StreamItem, None]:
        """A synchronous streamed task: publishes it (``Overloaded``, ``ServiceUnavailable``
        etc. raise at the first ``__anext__``, before any item), yields its pieces as they
        come, then one ``StreamEnd``; raises ``ResultTimeout`` when ``seconds`` pass first (the
        task is then recorded, so ``follow`` can go on with it). Closing the iterator
        (``aclose``, or cancelling its consumer) before the ``StreamEnd`` asks the worker to
        stop (``conveyor.streams.request_stop``) and counts a stream cancelled by disconnect.

        The task is published alone (never packed into a ``TaskBatch``), to the fast lane (the
        durable one with ``SYNC_DURABLE``)."""
        source = self._source()
        source.check_room(info.name)
        deadline = time.monotonic() + seconds
        task = self._task(
            info, payload, now_ms() + int(seconds * 1000), priority, request_id,
            self._waiter.channel,
        )  # fmt: skip
        task.stream = True
        task.events_key = events_key(task.task_id)
        task.chunk_channel = self._waiter.chunk_channel
        if max_retries is not None:
            task.max_retries = max_retries
        reader = ChunkReader(
            task.task_id, source, lambda: self._read(task.task_id), self.stream_buffer
        )
        watch = _StreamWatch(self.metrics, info.name, info.version)
        published = finished = False
        self._waiter.open_stream(task.task_id, reader)
        try:
            async with source.parked():
                try:
                    await self._publish(info, task, durable=self._sync_durable, seconds=seconds)
                except Overloaded as e:
                    await self._advise(e, info)
                    raise
                published = True
                watch.opened()
                while True:
                    item = await reader.next(deadline)
                    if item is None:
                        finished = True  # the task goes on; GET /tasks/{id}/stream follows it
                        await self._record(task, info)
                        raise ResultTimeout(
                            f"no result within {seconds:g} s; follow /tasks/{task.task_id}/stream",
                            model=info.name,
                            task_id=task.task_id,
                        )
                    if isinstance(item, StreamEnd):
                        finished = True
                    elif isinstance(item, Chunk):
                        watch.chunk()
                    yield item
                    if finished:
                        return
        except (GeneratorExit, asyncio.CancelledError):
            if published and not finished:
                watch.cancelled()
            raise
        finally:
            self._waiter.close_stream(task.task_id)
            watch.closed()
            if published and not finished:
                self._stop(task.task_id)

    async def follow(self, task_id: str, after: str = "0") -> AsyncGenerator[StreamItem, None]:
        """Any task's pieces after event id ``after`` (replay, then follow; any gateway), then
        ``StreamEnd``; ``TaskNotFound`` for an unknown task (at the first ``__anext__``), and
        when it expires meanwhile. A task without an event stream (a synchronous task that was
        not streamed) yields its ``StreamEnd`` only."""
        source = self._source()
        status = await self.status(task_id)
        source.check_room(status.model)
        record = status.record
        # A synchronous streamed task that ended in time has no record; its stream is there.
        has_stream = record.events if record is not None else True

        async def result() -> task_pb2.TaskResult | None:
            return (await self.status(task_id)).result

        watch = _StreamWatch(self.metrics, status.model, status.version)
        async with source.parked():
            watch.opened()
            items = follow_task(source, task_id, after, has_stream, status.result, result)
            try:
                async for item in items:
                    if isinstance(item, Chunk):
                        watch.chunk()
                    yield item
            finally:
                watch.closed()
                await items.aclose()

    def _source(self) -> EventSource:
        if self.events is None:
            raise RuntimeError("the dispatcher streams with an EventSource (events=)")
        return self.events

    def _stop(self, task_id: str) -> None:
        """Ask the worker to stop ``task_id``'s stream, in the background: the caller may be a
        cancelled task, which could await nothing more."""
        stopping = asyncio.create_task(self._request_stop(task_id))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)

    async def _request_stop(self, task_id: str) -> None:
        try:
            await request_stop(self._results.redis, task_id, self._result_ttl)
        except _REDIS_ERRORS as e:
            logger.warning("could not ask the worker to stop task %s (%s)", task_id, e)

    async def submit(
        self, info: ModelInfo, payload: bytes, *, deadline: float, priority: int = 0,
        request_id: str = "", task_id: str | None = None, callback_url: str = "",
        max_retries: int | None = None, stream: bool = False,
    ) -> str:  # fmt: skip
        """Record and publish an asynchronous task (durable lane); return its id (``task_id``
        when given, else a new one).

        The task gets an event stream (``conveyor.events``, started with ``queued``); its final
        status is POSTed to ``callback_url`` when given; ``max_retries`` (None: the model's
        default) bounds its retries after retryable failures; with ``stream`` the worker
        appends its response in pieces to the event stream (``follow`` reads them)."""
        task = self._task(
            info, payload, now_ms() + int(deadline * 1000), priority, request_id, "", task_id
        )
        task.events_key = events_key(task.task_id)
        task.stream = stream
        task.callback_url = callback_url
        if max_retries is not None:
            task.max_retries = max_retries
        await self._record(task, info, submitted=True)
        try:
            try:
                await self._publish(info, task, durable=True, seconds=None)
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


class _StreamWatch:
    """One stream's metrics (nothing without ``GatewayMetrics``): open streams, time to its
    first piece, pieces, streams the consumer closed before their end."""

    __slots__ = ("_first", "_open", "_series", "_started")

    def __init__(self, metrics: GatewayMetrics | None, model: str, version: str) -> None:
        self._series: StreamSeries | None = (
            metrics.stream_series(model, version) if metrics is not None else None
        )
        self._started = time.monotonic()
        self._first = True
        self._open = False

    def opened(self) -> None:
        if self._series is not None:
            self._open = True
            self._series.open.inc()

    def chunk(self) -> None:
        series = self._series
        if series is None:
            return
        if self._first:
            self._first = False
            series.first_chunk.observe(time.monotonic() - self._started)
        series.chunks.inc()

    def cancelled(self) -> None:
        if self._series is not None:
            self._series.cancelled.inc()

    def closed(self) -> None:
        if self._series is not None and self._open:
            self._open = False
            self._series.open.dec()
