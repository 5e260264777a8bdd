"""The result waiter against a real Redis: notifications resolve their waiters, bursts included;
a lost or silent subscription is opened again and its waiters are woken to read storage."""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from conveyor.redis import redis_client
from conveyor.streams import Chunk, ChunkAppend, ChunkWriter, Restart
from conveyor.waiter import HEALTH_SECONDS, ResultWaiter
from proto import task_pb2

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = redis_client(REDIS_URL, 8)
    yield client
    await client.aclose()


async def _started(
    redis: aioredis.Redis, health_seconds: float = HEALTH_SECONDS, chunk_channel: str = ""
) -> ResultWaiter:
    waiter = ResultWaiter(
        redis, f"test:waiter:{uuid.uuid4().hex}", health_seconds, chunk_channel=chunk_channel
    )
    await waiter.start()
    await _until(lambda: waiter.connected)
    await _until_subscribed(redis, waiter.channel)
    return waiter


async def _until(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _until_subscribed(redis: aioredis.Redis, channel: str) -> None:
    deadline = time.monotonic() + 10
    while (await redis.pubsub_numsub(channel))[0][1] < 1:
        assert time.monotonic() < deadline, "never subscribed"
        await asyncio.sleep(0.01)


def _result(task_id: str, text: str = "ok") -> bytes:
    return task_pb2.TaskResult(task_id=task_id, response=text.encode()).SerializeToString()


@pytest.mark.asyncio
async def test_a_burst_of_notifications_resolves_every_waiter(redis: aioredis.Redis) -> None:
    waiter = await _started(redis)
    try:
        ids = [uuid.uuid4().hex for _ in range(500)]
        for task_id in ids:
            waiter.register(task_id)
        waits = [asyncio.create_task(waiter.wait(task_id, 10)) for task_id in ids]
        async with redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.publish(waiter.channel, _result(task_id, f"payload {task_id}"))
            await pipe.execute()
        results = await asyncio.gather(*waits)
        assert [r.response.decode() if r else None for r in results] == [
            f"payload {task_id}" for task_id in ids
        ]
        # A notification for nobody, and one in the old form (the bare id): no harm, and the
        # bare id wakes its waiter without a result (it reads the stored one).
        waiter.register("old-form")
        pending = asyncio.create_task(waiter.wait("old-form", 10))
        await redis.publish(waiter.channel, _result("nobody"))
        await redis.publish(waiter.channel, b"old-form")
        assert await pending is None
    finally:
        await waiter.stop()


@pytest.mark.asyncio
async def test_a_killed_subscription_wakes_its_waiters_and_comes_back(
    redis: aioredis.Redis,
) -> None:
    waiter = await _started(redis)
    try:
        waiter.register("waiting")
        pending = asyncio.create_task(waiter.wait("waiting", 10))
        await asyncio.sleep(0.05)
        killed = await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 1
        assert await asyncio.wait_for(pending, 5) is None  # woken: read the stored result
        await _until_subscribed(redis, waiter.channel)
        await _until(lambda: waiter.connected)
        waiter.register("after")
        later = asyncio.create_task(waiter.wait("after", 10))
        await asyncio.sleep(0.05)
        await redis.publish(waiter.channel, _result("after", "back"))
        result = await asyncio.wait_for(later, 5)
        assert result is not None and result.response == b"back"
    finally:
        await waiter.stop()
    assert (await redis.pubsub_numsub(waiter.channel))[0][1] == 0  # stop unsubscribed


@pytest.mark.asyncio
async def test_a_silent_subscription_is_opened_again(redis: aioredis.Redis) -> None:
    waiter = await _started(redis, health_seconds=0.3)
    try:
        first = (await redis.execute_command("CLIENT", "LIST", "TYPE", "pubsub")).split()
        # Redis answers nothing, PONG included, for a while: the channel counts as lost.
        admin = aioredis.Redis.from_url(REDIS_URL)
        await admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        await admin.aclose()
        await asyncio.sleep(1.6)
        await _until(lambda: waiter.connected)
        await _until_subscribed(redis, waiter.channel)
        again = (await redis.execute_command("CLIENT", "LIST", "TYPE", "pubsub")).split()
        ids = lambda listing: {p for p in listing if p.startswith(b"id=")}  # noqa: E731
        assert not ids(first) & ids(again)  # a new connection
    finally:
        await waiter.stop()


class _Sink:
    """A ChunkSink that keeps what it is told."""

    def __init__(self) -> None:
        self.items: list[Chunk | Restart] = []
        self.results: list[task_pb2.TaskResult | None] = []
        self.resyncs = 0

    def push(self, item: Chunk | Restart) -> None:
        self.items.append(item)

    def resolved(self, result: task_pb2.TaskResult | None) -> None:
        self.results.append(result)

    def resync(self) -> None:
        self.resyncs += 1


@pytest.mark.asyncio
async def test_pushed_pieces_and_the_result_go_to_their_streams_sink(
    redis: aioredis.Redis,
) -> None:
    channel = f"test:chunks:{uuid.uuid4().hex}"
    waiter = await _started(redis, chunk_channel=channel)
    await _until_subscribed(redis, channel)
    task_id = f"test-{uuid.uuid4().hex}"
    task = task_pb2.Task(
        task_id=task_id,
        events_key=f"test:events:{task_id}",
        chunk_channel=channel,
        reply_channel=waiter.channel,
        attempt=1,
        stream=True,
    )
    sink, other = _Sink(), _Sink()
    try:
        waiter.open_stream(task_id, sink)
        waiter.open_stream("another", other)
        assert waiter.open_streams == 2
        writer = ChunkWriter(redis, max_chunks=100, ttl_seconds=60)
        outcomes = await writer.append([ChunkAppend(task, f"p{i}".encode(), i) for i in range(3)])
        await redis.publish(waiter.channel, _result(task_id, "combined"))
        await _until(lambda: len(sink.results) == 1)
        assert [(c.index, c.payload, c.id) for c in sink.items if isinstance(c, Chunk)] == [
            (i, f"p{i}".encode(), outcomes[i].event_id) for i in range(3)
        ]
        assert sink.results[0] is not None and sink.results[0].response == b"combined"
        assert other.items == [] and other.results == []
        # A run that starts again marks its stream with a restart, pushed too.
        await writer.append([ChunkAppend(task, b"again", 0)])
        await _until(lambda: len(sink.items) == 5)
        assert isinstance(sink.items[3], Restart) and isinstance(sink.items[4], Chunk)
        # A lost subscription tells every open stream to catch up.
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await _until(lambda: sink.resyncs >= 1 and other.resyncs >= 1)
        waiter.close_stream(task_id)
        waiter.close_stream("another")
        assert waiter.open_streams == 0
    finally:
        await waiter.stop()
        await redis.delete(task.events_key, f"conveyor:streamed:{task_id}")
