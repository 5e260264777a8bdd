"""Submitting tasks to a model version's queues, and getting their results back.

Synchronous tasks go to the version's fast lane (transient, with message priorities, expiring
at the caller's deadline) and their results come back in the worker's notification; those that
reach the gateway together share one message where the version's workers can unpack it
(``api.packing``); asynchronous
tasks go to a durable lane (persistent, replicated, confirmed) and are polled. Every publish
is confirmed and ``mandatory``: a full queue (the broker refuses the publish) is a 429, a
missing queue a 503, a broker that cannot be reached a 503; a Redis outage is a 503 too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
from aio_pika.abc import (
    AbstractChannel,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from aiormq import spec
from aiormq.exceptions import ChannelNotFoundEntity, DeliveryError, PublishError

from api.catalog import ModelInfo
from api.exceptions import (
    ModelUnavailable,
    Overloaded,
    ResultTimeout,
    ServiceUnavailable,
    TaskConflict,
    TaskNotFound,
)
from api.packing import TaskPacker, fast_lane_properties
from conveyor import logs
from conveyor.amqp import connect_amqp
from conveyor.protocol import (
    HIGH_PRIORITY,
    TASK_CONTENT_TYPE,
    dead_letter_queue,
    durable_queue,
    reply_channel,
    result_key,
    sync_queue,
    task_key,
)
from conveyor.results import CancelOutcome, ResultBackend, TaskRecord, now_ms
from conveyor.waiter import ResultWaiter
from proto import task_pb2

logger = logging.getLogger(__name__)

_REDIS_ERRORS = (aioredis.RedisError, OSError)
_AMQP_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError, OSError)
_PERSISTENT = 2  # AMQP delivery mode
PUBLISH_CHANNELS = 4  # channels publishing tasks, per gateway
_CLOSING: set[asyncio.Task[None]] = set()  # channels closing after a swap (kept referenced)


@dataclass(frozen=True)
class TaskStatus:
    """A task as ``GET /tasks/{id}`` reports it; ``result`` is set once it finished."""

    task_id: str
    model: str
    version: str
    result: task_pb2.TaskResult | None


@dataclass(frozen=True)
class QueueDepths:
    """Ready tasks of a model version (all lanes), and the model's dead letters."""

    queued: int
    dead_letters: int


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
    ) -> None:
        """``waiter`` and ``channel`` replace the Redis subscription and the RabbitMQ channels
        (unit tests pass small fakes; ``start`` is then not called). ``publish_channels``:
        how many channels publish tasks."""
        self._amqp_url = amqp_url
        self._results = results
        self._result_ttl = result_ttl
        self._sync_durable = sync_durable
        self._retry_after = retry_after
        self.gateway_id = uuid.uuid4().hex
        self._waiter = waiter or ResultWaiter(results.redis, reply_channel(self.gateway_id))
        self._connection: AbstractRobustConnection | None = None
        self._pool_size = max(1, publish_channels)
        # The publishing channels, with the publishes each has in flight and when each was last
        # replaced after a nack. aiormq serializes the publishes of one channel (a lock held
        # until the frames are written): under load, publishes on a single channel queue
        # behind each other and pass their confirm timeout. Each publish takes the channel
        # with the fewest in flight.
        self._channels: list[AbstractChannel] = [channel] if channel is not None else []
        self._busy: list[int] = [0] * len(self._channels)
        self._renewed: list[float] = [0.0] * len(self._channels)
        self._inspect: AbstractChannel | None = None
        self._packer = TaskPacker(self._send)

    async def start(self, connect_timeout: float) -> None:
        """Connect to RabbitMQ (waiting up to ``connect_timeout`` s for it, reconnecting on its
        own afterwards), open the publishing channels and subscribe for results."""
        self._connection = await connect_amqp(self._amqp_url, connect_timeout)
        channels = [await self._open_channel(self._connection) for _ in range(self._pool_size)]
        self._busy = [0] * len(channels)
        self._renewed = [0.0] * len(channels)
        self._channels = channels
        await self._waiter.start()

    @staticmethod
    async def _open_channel(connection: AbstractRobustConnection) -> AbstractChannel:
        return await connection.channel(publisher_confirms=True, on_return_raises=True)

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
        except _REDIS_ERRORS:
            redis_ok = False
        amqp_ok = (
            self._connection is not None
            and not self._connection.is_closed
            and bool(self._channels)
            and not any(channel.is_closed for channel in self._channels)
        )
        return {"rabbitmq": amqp_ok, "redis": redis_ok and self._waiter.connected}

    def _task(
        self,
        info: ModelInfo,
        payload: bytes,
        deadline_ms: int,
        priority: int,
        request_id: str,
        reply: str,
    ) -> task_pb2.Task:
        # 128 random bits, as uuid4 has (a task id is what GET /tasks/{id} asks for), without
        # building a UUID object on every request.
        task_id = secrets.token_hex(16)
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
    ) -> task_pb2.TaskResult:
        """Run a task synchronously: publish it, wait up to ``seconds`` for its result.

        On a timeout the task is recorded (so ``GET /tasks/{id}`` can follow it) and
        ``ResultTimeout`` names it.
        """
        deadline = time.monotonic() + seconds
        task = self._task(
            info, payload, now_ms() + int(seconds * 1000), priority, request_id,
            self._waiter.channel,
        )  # fmt: skip
        self._waiter.register(task.task_id)
        try:
            if not self._sync_durable and info.packs_tasks:
                await self._publish_packed(info, task, seconds)
            else:
                await self._publish(info, task, durable=self._sync_durable, seconds=seconds)
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

    async def _publish_packed(self, info: ModelInfo, task: task_pb2.Task, seconds: float) -> None:
        """Publish a sync task with the others of this loop turn (``api.packing``). The message
        waits for its confirm as long as its longest-waiting caller; this caller waits only its
        own ``seconds``, as an unpacked publish would."""
        try:
            async with asyncio.timeout(seconds):
                await self._packer.publish(
                    info, sync_queue(info.name, info.version), task.task_id,
                    task.SerializeToString(), task.priority, seconds,
                )  # fmt: skip
        except TimeoutError as e:
            raise self._unconfirmed(info) from e

    async def submit(
        self, info: ModelInfo, payload: bytes, *, deadline: float, priority: int = 0,
        request_id: str = "",
    ) -> str:  # fmt: skip
        """Record and publish an asynchronous task (durable lane); return its id."""
        task = self._task(info, payload, now_ms() + int(deadline * 1000), priority, request_id, "")
        await self._record(task, info)
        try:
            await self._publish(info, task, durable=True, seconds=None)
        except BaseException:
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._results.redis.delete(task_key(task.task_id))
            raise
        return task.task_id

    async def _publish(
        self, info: ModelInfo, task: task_pb2.Task, *, durable: bool, seconds: float | None
    ) -> None:
        body = task.SerializeToString()
        if durable:
            queue = durable_queue(info.name, info.version, high=task.priority >= HIGH_PRIORITY)
            properties = spec.Basic.Properties(
                content_type=TASK_CONTENT_TYPE,
                delivery_mode=_PERSISTENT,
                message_id=task.task_id,
                priority=task.priority,
            )
        else:
            queue = sync_queue(info.name, info.version)
            properties = fast_lane_properties(
                TASK_CONTENT_TYPE, task.task_id, task.priority, seconds or 0.0
            )
        await self._send(info, body, properties, queue, seconds)

    async def _send(
        self, info: ModelInfo, body: bytes, properties: spec.Basic.Properties, queue: str,
        seconds: float | None,
    ) -> None:  # fmt: skip
        """Publish one message for ``info``'s version and wait for its confirm, turning every
        way it can fail into the gateway's error (429, 503)."""
        if not self._channels:
            raise ServiceUnavailable(
                "RabbitMQ is not connected", dependency="rabbitmq", model=info.name,
                retry_after=self._retry_after,
            )  # fmt: skip
        try:
            await self._confirmed(body, properties, queue, seconds)
        except PublishError as e:  # returned: no queue of that name (before DeliveryError: a
            # returned message is a DeliveryError too)
            raise ModelUnavailable(
                f"model {info.name!r} version {info.version!r} has no queue (no worker "
                "declared it yet)",
                model=info.name,
            ) from e
        except DeliveryError as e:  # nacked: the queue is at its length limit
            raise Overloaded(
                f"the queue of model {info.name!r} version {info.version!r} is full",
                model=info.name,
                retry_after=self._retry_after,
            ) from e
        except TimeoutError as e:
            raise self._unconfirmed(info) from e
        except _AMQP_ERRORS as e:
            raise ServiceUnavailable(
                f"RabbitMQ is unreachable: {type(e).__name__}", dependency="rabbitmq",
                model=info.name, retry_after=self._retry_after,
            ) from e  # fmt: skip

    def _unconfirmed(self, info: ModelInfo) -> ServiceUnavailable:
        """The error of a publish whose confirm did not come within its caller's time."""
        return ServiceUnavailable(
            "RabbitMQ did not confirm the task in time", dependency="rabbitmq",
            model=info.name, retry_after=self._retry_after,
        )  # fmt: skip

    async def _confirmed(
        self, body: bytes, properties: spec.Basic.Properties, queue: str, seconds: float | None
    ) -> None:
        """Publish and wait for the broker's confirm; a nack may be tried again on a new channel.

        After a RabbitMQ node is lost, a channel whose publish to a quorum queue was nacked
        while the queue had no leader keeps being nacked (RabbitMQ 3.10), though the queue has
        a new leader; a new channel is not. So on a nack the channel is replaced (each channel
        of the pool at most once a second, so a full queue costs little) and the task published
        once more: a nack means "full" only when the fresh channel gets one too.
        """
        slot = self._least_busy()
        channel = self._channels[slot]
        self._busy[slot] += 1
        try:
            try:
                await _publish(channel, body, properties, queue, seconds)
            except PublishError:
                raise
            except DeliveryError:
                connection = self._connection
                now = time.monotonic()
                if connection is None or connection.is_closed or now - self._renewed[slot] < 1.0:
                    raise
                if self._channels[slot] is channel:
                    self._renewed[slot] = now
                    self._channels[slot] = await self._open_channel(connection)
                    # Later, so that publishes still waiting on the old channel get their
                    # confirms.
                    _close_later(channel, 5.0)
                await _publish(self._channels[slot], body, properties, queue, seconds)
        finally:
            self._busy[slot] -= 1

    def _least_busy(self) -> int:
        """The slot of the publishing channel with the fewest publishes in flight."""
        busy = self._busy
        best = 0
        for slot in range(1, len(busy)):
            if busy[slot] < busy[best]:
                best = slot
        return best

    async def _record(self, task: task_pb2.Task, info: ModelInfo) -> None:
        record = TaskRecord(
            model=info.name,
            version=info.version,
            created_unix_ms=task.created_unix_ms,
            deadline_unix_ms=task.deadline_unix_ms,
        )
        ttl = self._result_ttl + max(0, (task.deadline_unix_ms - now_ms()) // 1000) + 1
        try:
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
        return TaskStatus(task_id=task_id, model=model, version=version, result=result)

    async def cancel(self, task_id: str) -> TaskStatus:
        """Cancel a task still queued; raise ``TaskConflict`` if it finished or runs."""
        status = await self.status(task_id)
        cancelled = task_pb2.TaskResult(task_id=task_id, model=status.model, version=status.version)
        cancelled.error.code = task_pb2.TaskError.CANCELLED
        cancelled.error.message = "cancelled before a worker ran it"
        cancelled.finished_unix_ms = now_ms()
        try:
            outcome, existing = await self._results.cancel(task_id, cancelled, self._result_ttl)
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
                return TaskStatus(task_id, status.model, status.version, existing)
            raise TaskConflict(
                f"task {task_id!r} has finished; there is nothing to cancel",
                task_id=task_id,
                status="done" if existing.WhichOneof("outcome") == "response" else "failed",
            )
        return TaskStatus(task_id, status.model, status.version, cancelled)

    async def queue_depths(self, model: str, version: str) -> QueueDepths | None:
        """Ready tasks in the version's lanes and the model's dead letters; None if unknown."""
        if self._connection is None or self._connection.is_closed:
            return None
        names = (
            sync_queue(model, version),
            durable_queue(model, version),
            durable_queue(model, version, high=True),
        )
        try:
            if self._inspect is None or self._inspect.is_closed:
                self._inspect = await self._connection.channel()
            queued = 0
            for name in names:
                queued += await _count(self._inspect, name)
            return QueueDepths(queued, await _count(self._inspect, dead_letter_queue(model)))
        except ChannelNotFoundEntity:
            self._inspect = None  # the broker closed the channel
            return None
        except (TimeoutError, RuntimeError, *_AMQP_ERRORS):  # RuntimeError: the robust
            # connection is between two attempts ("Connection was not opened")
            self._inspect = None
            return None


async def _publish(
    channel: AbstractChannel,
    body: bytes,
    properties: spec.Basic.Properties,
    queue: str,
    seconds: float | None,
) -> None:
    """Publish ``body`` to ``queue`` through the default exchange, ``mandatory``, and wait for
    the broker's confirm: what ``channel.default_exchange.publish`` does, without building an
    ``aio_pika.Message`` (a third of the publish's own CPU). A nack raises ``DeliveryError``,
    a returned message ``PublishError`` (the channel is opened with ``on_return_raises``)."""
    if channel.is_closed:
        raise ChannelInvalidStateError(f"{channel!r} closed")
    underlay = await channel.get_underlay_channel()
    await underlay.basic_publish(
        body, routing_key=queue, properties=properties, mandatory=True, timeout=seconds
    )


def _close_later(channel: AbstractChannel, delay: float) -> None:
    """Close ``channel`` after ``delay`` seconds, ignoring errors (its connection may be gone)."""

    async def close() -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(Exception):
            await channel.close()

    task = asyncio.get_running_loop().create_task(close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


async def _count(channel: AbstractChannel, name: str) -> int:
    """Ready messages of queue ``name``, asked of the broker now. A robust channel would hand
    back the queue object of its first passive declaration, with that moment's count."""
    queue: AbstractQueue
    if isinstance(channel, AbstractRobustChannel):
        queue = await channel.declare_queue(name, passive=True, robust=False)
    else:
        queue = await channel.declare_queue(name, passive=True)
    return queue.declaration_result.message_count or 0
