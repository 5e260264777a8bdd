"""Waiting for task results without polling: one Redis pub/sub subscription per gateway.

Workers publish the stored ``TaskResult`` itself on the task's reply channel, so a waiting
request gets its answer from the notification. After a lost subscription (Redis restarting)
every waiter is woken with no result and reads the stored one, so a notification lost during
the outage costs latency, never an answer.

The same connection subscribes the gateway's chunk channel (``conveyor.streams``): each pushed
piece of a streamed task goes to the ``ChunkSink`` registered for its task id, and that task's
result to the sink too. A lost subscription tells every sink to ``resync`` (catch up from
Redis: pieces pushed meanwhile are lost, not their entries in the task's event stream). A
request that streams nothing pays nothing for this: its result resolves its future as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Protocol

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.asyncio.connection import AbstractConnection

from conveyor.streams import Chunk, Restart, parse_push, push_item
from proto import task_pb2

logger = logging.getLogger(__name__)

_RECONNECT_DELAY = 0.2
HEALTH_SECONDS = 30.0
"""How often the result channel is pinged; one silent for that long is reopened."""


class ChunkSink(Protocol):
    """Where the pieces and the result of one streamed task go (``api.streaming``). Called on
    the listener's task: each method must only take note and return at once."""

    def push(self, item: Chunk | Restart) -> None:
        """A piece (or restart marker) as the worker pushed it, in the order pushed."""

    def resolved(self, result: task_pb2.TaskResult | None) -> None:
        """The task's result as notified; None: read the stored one."""

    def resync(self) -> None:
        """The subscription was away: pushes may be lost; catch up from Redis."""


def _expire(future: asyncio.Future[task_pb2.TaskResult | None]) -> None:
    if not future.done():
        future.set_result(None)


class ResultWaiter:
    """Maps task ids to futures, resolved when a worker publishes the task's result."""

    def __init__(
        self,
        client: aioredis.Redis,
        channel: str,
        health_seconds: float = HEALTH_SECONDS,
        chunk_channel: str = "",
    ) -> None:
        """``channel``: the reply channel; ``chunk_channel`` (optional): the channel of the
        pieces of this gateway's streamed tasks, subscribed on the same connection."""
        self._redis = client
        self.channel = channel
        self.chunk_channel = chunk_channel
        self._chunk_channel = chunk_channel.encode()
        self.health_seconds = health_seconds
        self._futures: dict[str, asyncio.Future[task_pb2.TaskResult | None]] = {}
        self._sinks: dict[str, ChunkSink] = {}
        self._listener: asyncio.Task[None] | None = None
        self._heard = False  # anything read since the last PING
        self.connected = False

    async def start(self) -> None:
        """Subscribe to the channel and start listening (retrying while Redis is away)."""
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        """Stop listening and drop the subscription."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self.connected = False

    def register(self, task_id: str) -> None:
        """Start expecting the result of ``task_id`` (call before publishing the task)."""
        self._futures[task_id] = asyncio.get_running_loop().create_future()

    def discard(self, task_id: str) -> None:
        """Stop expecting ``task_id``."""
        future = self._futures.pop(task_id, None)
        if future is not None and not future.done():
            future.cancel()

    def open_stream(self, task_id: str, sink: ChunkSink) -> None:
        """Send ``task_id``'s pushed pieces and its result to ``sink`` (call before publishing
        the task) until ``close_stream``."""
        self._sinks[task_id] = sink

    def close_stream(self, task_id: str) -> None:
        """Stop sending ``task_id``'s pieces and result anywhere."""
        self._sinks.pop(task_id, None)

    @property
    def open_streams(self) -> int:
        """How many streams are open."""
        return len(self._sinks)

    async def wait(self, task_id: str, seconds: float) -> task_pb2.TaskResult | None:
        """Wait up to ``seconds`` for the result of ``task_id``.

        Returns the result, or None on a timeout or when the caller must read the stored
        result itself (the subscription was lost meanwhile). The task stays registered.
        """
        future = self._futures.get(task_id)
        if future is None or seconds <= 0:
            return None
        # A timer that resolves the future with None costs one handle; wait_for(shield(...))
        # costs two more futures and their callbacks on every request.
        timer = asyncio.get_running_loop().call_later(seconds, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()
            if future.done() and self._futures.get(task_id) is future:
                self.register(task_id)  # re-arm for a later notification

    def _resolve(self, task_id: str, result: task_pb2.TaskResult | None) -> None:
        future = self._futures.get(task_id)
        if future is not None:
            if not future.done():
                future.set_result(result)
            return
        sink = self._sinks.get(task_id)
        if sink is not None:
            sink.resolved(result)

    def _wake_all(self) -> None:
        """Wake every waiter with no result: it reads the stored one (the channel was away,
        so a notification may have been missed); every stream catches up from Redis."""
        for task_id in list(self._futures):
            self._resolve(task_id, None)
        for sink in list(self._sinks.values()):
            sink.resync()

    def _on_chunk(self, data: bytes) -> None:
        try:
            push = parse_push(data)
        except DecodeError:
            logger.warning("chunk channel: a message that is not a StreamChunk; ignored")
            return
        sink = self._sinks.get(push.task_id)
        if sink is None:
            return  # nobody reads this stream here any more
        item = push_item(push)
        if item is not None:
            sink.push(item)

    def _on_message(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        result = task_pb2.TaskResult()
        try:
            result.ParseFromString(raw)
        except DecodeError:
            # Earlier workers published the bare task id.
            self._resolve(raw.decode(errors="replace"), None)
            return
        self._resolve(result.task_id, result)

    async def _subscribe(self) -> AbstractConnection:
        """A connection of the client's pool (one server, or the primary Sentinel names; with
        its password, database and TLS), subscribed to the channel."""
        pool = self._redis.connection_pool
        connection: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            channels = (self.channel, self.chunk_channel) if self.chunk_channel else (self.channel,)
            await connection.send_command("SUBSCRIBE", *channels)
        except BaseException:
            await self._release(connection)
            raise
        return connection

    async def _release(self, connection: AbstractConnection) -> None:
        """Close a subscribed connection (it must never serve commands again) and give its
        place back to the pool."""
        with contextlib.suppress(Exception):
            await connection.disconnect(nowait=True)
        with contextlib.suppress(Exception):
            await self._redis.connection_pool.release(connection)

    async def _read(self, connection: AbstractConnection) -> None:
        """Resolve waiters from the messages on ``connection`` until it fails or closes."""
        watchdog = asyncio.create_task(self._watch(connection))
        try:
            while True:
                reply = await connection.read_response(
                    disable_decoding=True,  # a notification is a serialized TaskResult
                    timeout=math.inf,  # a subscription may be quiet for any time
                    disconnect_on_error=False,  # _release closes it
                    push_request=True,  # RESP3 delivers messages as pushes
                )
                self._heard = True
                # a message, a PONG, or the subscription's confirmation
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                    if reply[1] == self._chunk_channel:
                        self._on_chunk(reply[2])
                    else:
                        self._on_message(reply[2])
        finally:
            watchdog.cancel()

    async def _watch(self, connection: AbstractConnection) -> None:
        """A PING every ``health_seconds``; a connection that answered nothing (no message and
        no PONG) since the last one is closed, so ``_read`` fails and the channel is opened anew
        (a peer gone without a word, as after a network partition, closes no socket)."""
        ping = connection.pack_command("PING")
        try:
            while True:
                self._heard = False
                await connection.send_packed_command(ping, check_health=False)
                await asyncio.sleep(self.health_seconds)
                if not self._heard:
                    logger.warning(
                        "result channel silent for %g s; reconnecting", self.health_seconds
                    )
                    break
        except (aioredis.RedisError, OSError) as e:
            logger.warning("result channel: PING failed (%s)", e)
        await connection.disconnect(nowait=True)

    async def _listen(self) -> None:
        outage = False
        while True:
            connection: AbstractConnection | None = None
            try:
                connection = await self._subscribe()
                self.connected = True
                if outage:
                    logger.warning("result channel back")
                    outage = False
                self._wake_all()  # results published while we were away
                await self._read(connection)
            except (aioredis.RedisError, OSError) as e:
                self.connected = False
                if not outage:
                    logger.warning("result channel lost (%s); resubscribing", e)
                    outage = True
                self._wake_all()
            finally:
                if connection is not None:
                    await self._release(connection)
            await asyncio.sleep(_RECONNECT_DELAY)
