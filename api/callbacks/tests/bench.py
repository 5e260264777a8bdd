"""A test's own corner of the real Redis: a callbacks stream, retry lane and state hashes under
a unique prefix, outboxes on them, and waiting for a condition."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest_asyncio
import redis.asyncio as aioredis

from api.callbacks.outbox import Outbox

__all__ = ["REDIS_URL", "Bench", "bench", "eventually"]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class Bench:
    """Keys of one test (deleted at its end) and a client to look at them (answering ``str``)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self.prefix = f"test:callbacks:{uuid.uuid4().hex[:12]}:"
        self.stream = self.prefix + "stream"
        self.retry_key = self.prefix + "retry"
        self.state_prefix = self.prefix + "state:"

    def outbox(self, consumer: str = "c1", ttl: int = 60, url: str = REDIS_URL) -> Outbox:
        """An outbox on this test's keys with a client of its own (at ``url``)."""
        return Outbox(
            aioredis.Redis.from_url(url),
            consumer,
            ttl,
            stream=self.stream,
            retry_key=self.retry_key,
            state_prefix=self.state_prefix,
        )

    async def add(self, task_id: str, url: str, status: str = "done") -> str:
        """Append a callback entry as the script that stores a final result does."""
        fields = {"task_id": task_id, "url": url, "status": status}
        return str(await self.redis.xadd(self.stream, fields))  # type: ignore[arg-type]

    async def state(self, task_id: str) -> dict[str, str]:
        """The task's delivery state hash (empty if none)."""
        state = await self.redis.hgetall(self.state_prefix + task_id)
        return {str(k): str(v) for k, v in state.items()}

    async def pending(self) -> int:
        """Entries read by a consumer of the group and not settled."""
        summary = await self.redis.xpending(self.stream, "conveyor-callbacks")
        return int(summary["pending"])


@pytest_asyncio.fixture
async def bench() -> AsyncIterator[Bench]:
    """A ``Bench``; its keys are deleted afterwards."""
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    found = Bench(client)
    try:
        yield found
    finally:
        keys = [key async for key in client.scan_iter(match=found.prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    """Wait until ``check()`` is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
