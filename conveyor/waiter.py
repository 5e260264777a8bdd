"""Waiting for task results without polling: one Redis pub/sub subscription per gateway.

Workers publish the stored ``TaskResult`` itself on the task's reply channel, so a waiting
request gets its answer from the notification. After a lost subscription (Redis restarting)
every waiter is woken with no result and reads the stored one, so a notification lost during
the outage costs latency, never an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.asyncio.client import PubSub

from proto import task_pb2

logger = logging.getLogger(__name__)

_RECONNECT_DELAY = 0.2


def _expire(future: asyncio.Future[task_pb2.TaskResult | None]) -> None:
    if not future.done():
        future.set_result(None)


class ResultWaiter:
    """Maps task ids to futures, resolved when a worker publishes the task's result."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self._redis = client
        self.channel = channel
        self._futures: dict[str, asyncio.Future[task_pb2.TaskResult | None]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
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
        await self._close_pubsub()

    def register(self, task_id: str) -> None:
        """Start expecting the result of ``task_id`` (call before publishing the task)."""
        self._futures[task_id] = asyncio.get_running_loop().create_future()

    def discard(self, task_id: str) -> None:
        """Stop expecting ``task_id``."""
        future = self._futures.pop(task_id, None)
        if future is not None and not future.done():
            future.cancel()

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
        if future is not None and not future.done():
            future.set_result(result)

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

    async def _close_pubsub(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    async def _listen(self) -> None:
        outage = False
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                    await self._pubsub.subscribe(self.channel)
                    self.connected = True
                    if outage:
                        logger.warning("result channel back")
                        outage = False
                    # Results published while we were away: waiters read them from storage.
                    for task_id in list(self._futures):
                        self._resolve(task_id, None)
                message = await self._pubsub.get_message(timeout=1.0)
            except (aioredis.RedisError, OSError) as e:
                self.connected = False
                if not outage:
                    logger.warning("result channel lost (%s); resubscribing", e)
                    outage = True
                await self._close_pubsub()
                for task_id in list(self._futures):
                    self._resolve(task_id, None)
                await asyncio.sleep(_RECONNECT_DELAY)
                continue
            if message is not None and message.get("type") == "message":
                self._on_message(message["data"])
