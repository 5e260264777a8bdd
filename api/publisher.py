"""Publishing the gateway's tasks to RabbitMQ: one connection, a pool of confirming channels,
and the synchronous tasks that come together packed into one message.

- Every publish is ``mandatory`` and confirmed; each way it can fail is one of the gateway's
  errors: a full queue (the broker nacks) is ``Overloaded`` (429), a missing queue (returned)
  ``ModelUnavailable`` (503), no confirm in the caller's time or a broker that cannot be reached
  ``ServiceUnavailable`` (503).
- A publish takes the channel with the fewest publishes in flight (aiormq serializes the
  publishes of one channel). A nacked publish is tried once more on a fresh channel (each slot
  renewed at most once a second): after a node is lost, a channel can keep being nacked for a
  quorum queue that has a new leader, and a nack means "full" only when the fresh channel gets
  one too.
- Synchronous tasks go to the version's fast lane (transient, with message priorities,
  expiring at the caller's deadline). Those for one version and priority leave packed as one
  ``TaskBatch`` message (up to ``MAX_TASKS_PER_MESSAGE``) where the version's workers can unpack
  it; a task alone leaves as a plain ``Task``. Packing is a group commit: with no message of
  that version and priority awaiting its confirm, a pack leaves after the current turn of the
  event loop (a lone task waits for nothing); while one awaits it, the tasks that come join the
  next pack, which leaves when that confirm (or failure) arrives, or at once when full. So packs
  grow with the load, however the transport hands requests to the loop (HTTP parses many in
  one turn, gRPC one call a turn). Every caller of a packed message gets its outcome; each
  waits for the confirm only its own time.
  The message expires with the latest of its tasks' deadlines; each task keeps its own.
- Asynchronous tasks (and synchronous ones with ``SYNC_DURABLE``) go to a durable lane:
  persistent, replicated, one message each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

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
from api.exceptions import ModelUnavailable, Overloaded, ServiceUnavailable
from conveyor.amqp import connect_amqp
from conveyor.protocol import (
    HIGH_PRIORITY,
    MAX_TASKS_PER_MESSAGE,
    TASK_BATCH_CONTENT_TYPE,
    TASK_CONTENT_TYPE,
    dead_letter_queue,
    durable_queue,
    sync_queue,
)
from proto import task_pb2

__all__ = ["PUBLISH_CHANNELS", "Publisher", "QueueDepths", "fast_lane_properties", "pack_bodies"]

_AMQP_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError, OSError)
_PERSISTENT = 2  # AMQP delivery mode
_TRANSIENT = 1  # AMQP delivery mode
_TASKS_FIELD = b"\x0a"  # TaskBatch.tasks: field 1, length-delimited
PUBLISH_CHANNELS = 4  # channels publishing tasks, per gateway
_CLOSING: set[asyncio.Task[None]] = set()  # channels closing after a swap (kept referenced)


@dataclass(frozen=True)
class QueueDepths:
    """Ready tasks of a model version (all lanes), and the model's dead letters."""

    queued: int
    dead_letters: int


class Publisher:
    """The gateway's side of RabbitMQ: publishes tasks (see the module doc) and reads queue
    depths."""

    def __init__(
        self,
        amqp_url: str,
        *,
        retry_after: int = 1,
        channel: AbstractChannel | None = None,
        publish_channels: int = PUBLISH_CHANNELS,
        max_tasks: int = MAX_TASKS_PER_MESSAGE,
    ) -> None:
        """``channel`` replaces the RabbitMQ connection (unit tests pass a small fake; ``start``
        is then not called). ``publish_channels``: how many channels publish tasks;
        ``max_tasks``: the most tasks in one packed message."""
        self._amqp_url = amqp_url
        self._retry_after = retry_after
        self._connection: AbstractRobustConnection | None = None
        self._pool_size = max(1, publish_channels)
        self._channels: list[AbstractChannel] = [channel] if channel is not None else []
        self._busy: list[int] = [0] * len(self._channels)  # publishes in flight, per channel
        self._renewed: list[float] = [0.0] * len(self._channels)  # last swap after a nack
        self._inspect: AbstractChannel | None = None
        self._max_tasks = max(1, max_tasks)
        self._open: dict[tuple[str, int], _Pack] = {}
        self._on_wire: dict[tuple[str, int], int] = {}  # packs sent, not yet confirmed, per key
        self._sending: set[asyncio.Task[None]] = set()

    async def start(self, connect_timeout: float) -> None:
        """Connect (waiting up to ``connect_timeout`` s for RabbitMQ, reconnecting on its own
        afterwards) and open the publishing channels."""
        self._connection = await connect_amqp(self._amqp_url, connect_timeout)
        channels = [await self._open_channel(self._connection) for _ in range(self._pool_size)]
        self._busy = [0] * len(channels)
        self._renewed = [0.0] * len(channels)
        self._channels = channels

    @staticmethod
    async def _open_channel(connection: AbstractRobustConnection) -> AbstractChannel:
        return await connection.channel(publisher_confirms=True, on_return_raises=True)

    async def stop(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()

    def ready(self) -> bool:
        """Whether the connection and every publishing channel are open."""
        return (
            self._connection is not None
            and not self._connection.is_closed
            and bool(self._channels)
            and not any(channel.is_closed for channel in self._channels)
        )

    async def publish_sync(self, info: ModelInfo, task: task_pb2.Task, seconds: float) -> None:
        """Publish a synchronous task to the fast lane, packed with the others that come with it
        where ``info``'s workers unpack ``TaskBatch`` messages; wait for the confirm at most
        ``seconds``."""
        if not info.packs_tasks:
            await self.publish(info, task, durable=False, seconds=seconds)
            return
        try:
            async with asyncio.timeout(seconds):
                await self._publish_packed(
                    info, sync_queue(info.name, info.version), task.task_id,
                    task.SerializeToString(), task.priority, seconds,
                )  # fmt: skip
        except TimeoutError as e:
            raise self._unconfirmed(info) from e

    async def publish(
        self, info: ModelInfo, task: task_pb2.Task, *, durable: bool, seconds: float | None
    ) -> None:
        """Publish one task alone: to a durable lane (by its priority), or to the fast lane
        expiring after ``seconds``; wait for the confirm at most ``seconds`` (None: as long as
        it takes)."""
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

    async def _publish_packed(
        self, info: ModelInfo, queue: str, task_id: str, body: bytes, priority: int,
        seconds: float,
    ) -> None:  # fmt: skip
        """Publish a serialized task with the others of this turn; return once the broker
        confirmed the message holding it, or raise the publish's error."""
        loop = asyncio.get_running_loop()
        key = (queue, priority)
        pack = self._open.get(key)
        if pack is None:
            pack = self._open[key] = _Pack(info, queue, priority)
            if key not in self._on_wire:
                self._start(pack)
        waiter: asyncio.Future[None] = loop.create_future()
        pack.bodies.append(body)
        pack.task_ids.append(task_id)
        pack.waiters.append(waiter)
        pack.seconds = max(pack.seconds, seconds)
        if len(pack.bodies) >= self._max_tasks:
            self._close(pack)
            if not pack.started:
                self._start(pack)
        await waiter

    def _start(self, pack: _Pack) -> None:
        """Send ``pack``: its first step runs after the rest of this turn, so the tasks that
        come meanwhile join it."""
        key = (pack.queue, pack.priority)
        pack.started = True
        self._on_wire[key] = self._on_wire.get(key, 0) + 1
        task = asyncio.get_running_loop().create_task(self._send_pack(pack))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _close(self, pack: _Pack) -> None:
        """No task joins ``pack`` any more (it is full, or being sent)."""
        key = (pack.queue, pack.priority)
        if self._open.get(key) is pack:
            del self._open[key]

    def _sent(self, pack: _Pack) -> None:
        """``pack`` is confirmed (or failed): the pack that filled meanwhile goes next."""
        key = (pack.queue, pack.priority)
        left = self._on_wire[key] - 1
        if left:
            self._on_wire[key] = left
            return
        del self._on_wire[key]
        waiting = self._open.get(key)
        if waiting is not None and not waiting.started:
            self._start(waiting)

    async def _send_pack(self, pack: _Pack) -> None:
        try:
            await self._send_packed(pack)
        finally:
            self._sent(pack)

    async def _send_packed(self, pack: _Pack) -> None:
        self._close(pack)
        single = len(pack.bodies) == 1
        properties = fast_lane_properties(
            TASK_CONTENT_TYPE if single else TASK_BATCH_CONTENT_TYPE,
            pack.task_ids[0] if single else None,
            pack.priority,
            pack.seconds,
        )
        body = pack.bodies[0] if single else pack_bodies(pack.bodies)
        try:
            await self._send(pack.info, body, properties, pack.queue, pack.seconds)
        except asyncio.CancelledError:
            for waiter in pack.waiters:
                waiter.cancel()
            raise
        except Exception as e:
            for waiter in pack.waiters:
                if not waiter.done():
                    waiter.set_exception(e)
            return
        for waiter in pack.waiters:
            if not waiter.done():
                waiter.set_result(None)

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
    ``aio_pika.Message`` on the hot path. A nack raises ``DeliveryError``,
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


def fast_lane_properties(
    content_type: str, message_id: str | None, priority: int, seconds: float
) -> spec.Basic.Properties:
    """A fast-lane message's properties: transient, with the tasks' priority, expiring after
    ``seconds`` (the caller's deadline; at least a millisecond)."""
    return spec.Basic.Properties(
        content_type=content_type,
        delivery_mode=_TRANSIENT,
        message_id=message_id,
        priority=priority,
        expiration=str(max(int(seconds * 1000), 1)),  # milliseconds
    )


def pack_bodies(bodies: list[bytes]) -> bytes:
    """Serialize a ``TaskBatch`` of already serialized ``Task`` messages (protobuf's wire
    format for a repeated message field), without parsing them again."""
    parts: list[bytes] = []
    for body in bodies:
        parts.append(_TASKS_FIELD)
        parts.append(_varint(len(body)))
        parts.append(body)
    return b"".join(parts)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass
class _Pack:
    """Tasks waiting for the end of the loop's turn, for one queue and priority."""

    info: ModelInfo
    queue: str
    priority: int
    bodies: list[bytes] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    seconds: float = 0.0
    started: bool = False
    """Whether its send task exists (it is sent once its first step runs)."""
