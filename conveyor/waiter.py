"""Waiting for task results without polling: one Redis pub/sub subscription per gateway."""

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

logger = logging.getLogger(__name__)

_RECONNECT_DELAY = 0.5


class ResultWaiter:
    """Maps task ids to futures, resolved when a worker publishes the id on our channel.

    Register a task *before* publishing it; after a wake-up or a timeout the caller re-reads the
    stored result, so a notification lost during a reconnect costs nothing but latency.
    """

    def __init__(self, client: "aioredis.Redis", channel: str) -> None:
        self._redis = client
        self.channel = channel
        self._futures: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Subscribe to the channel and start listening."""
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        self._subscribed.set()
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        """Stop listening and drop the subscription."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    def register(self, task_id: str) -> None:
        """Start expecting a notification for ``task_id``."""
        self._futures[task_id] = asyncio.get_running_loop().create_future()

    def discard(self, task_id: str) -> None:
        """Stop expecting ``task_id``."""
        future = self._futures.pop(task_id, None)
        if future is not None and not future.done():
            future.cancel()

    async def wait(self, task_id: str, seconds: float) -> None:
        """Wait up to ``seconds`` for the notification of ``task_id`` (no error)."""
        future = self._futures.get(task_id)
        if future is None or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), seconds)
        if future.done() and task_id in self._futures:
            self.register(task_id)  # re-arm for a spurious wake-up

    def _wake(self, task_id: str) -> None:
        future = self._futures.get(task_id)
        if future is not None and not future.done():
            future.set_result(None)

    def _wake_all(self) -> None:
        for task_id in list(self._futures):
            self._wake(task_id)

    async def _listen(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (aioredis.RedisError, OSError) as e:
                logger.warning("result channel lost (%s); reconnecting", e)
                await asyncio.sleep(_RECONNECT_DELAY)
                self._wake_all()  # waiters re-read their stored results
                continue
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            self._wake(data.decode() if isinstance(data, bytes) else str(data))
