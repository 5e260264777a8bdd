"""A streamed task's pieces in Redis, written by ``conveyor.streams`` over a real Redis: each
piece a ``chunk`` event and, for a task someone waits for, a push carrying the same event id;
pieces appended together share a round trip and keep their order; a later run of the task
marks its stream (and its pushes) with a ``restart`` first; the stop key is answered; the
final event follows the pieces."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from conveyor.events import parse_entries
from conveyor.protocol import chunk_channel, events_key, reply_channel, result_key, streamed_key
from conveyor.results import ResultBackend
from conveyor.streams import (
    AppendOutcome,
    Chunk,
    ChunkAppend,
    ChunkWriter,
    Restart,
    parse_push,
    push_item,
    request_stop,
    stream_item,
)
from proto import task_pb2


@pytest_asyncio.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    yield redis
    await redis.aclose()


def _task(gateway: str = "", attempt: int = 1) -> task_pb2.Task:
    task_id = uuid.uuid4().hex
    return task_pb2.Task(
        task_id=task_id,
        model="streams",
        version="1",
        result_key=result_key(task_id),
        events_key=events_key(task_id),
        reply_channel=reply_channel(gateway) if gateway else "",
        chunk_channel=chunk_channel(gateway) if gateway else "",
        stream=True,
        result_ttl_seconds=60,
        attempt=attempt,
    )


async def _messages(pubsub: aioredis.client.PubSub, count: int) -> list[tuple[str, bytes]]:
    """The next ``count`` messages (channel, data) of ``pubsub``, in order."""
    messages: list[tuple[str, bytes]] = []
    deadline = asyncio.get_running_loop().time() + 10.0
    while len(messages) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(messages)} of {count}"
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if message is not None:  # None: nothing yet, or a subscription's confirmation
            messages.append((message["channel"].decode(), message["data"]))
    return messages


async def _pushes(pubsub: aioredis.client.PubSub, count: int) -> list[task_pb2.StreamChunk]:
    return [parse_push(data) for _, data in await _messages(pubsub, count)]


def _order(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


@pytest.mark.asyncio
async def test_pieces_are_events_and_pushes_with_the_same_ids_in_order(
    client: aioredis.Redis,
) -> None:
    gateway = uuid.uuid4().hex
    task = _task(gateway)
    writer = ChunkWriter(client, max_chunks=100, ttl_seconds=30)
    pubsub = client.pubsub()
    await pubsub.subscribe(task.chunk_channel)
    try:
        payloads = [f"piece {i}".encode() for i in range(5)]
        first = await writer.append([ChunkAppend(task, payloads[0], 0)])
        rest = await writer.append([ChunkAppend(task, p, i) for i, p in enumerate(payloads) if i])
        outcomes = first + rest
        assert [o.stop for o in outcomes] == [False] * 5
        ids = [o.event_id for o in outcomes]
        assert ids == sorted(ids, key=_order) and len(set(ids)) == 5
        pushes = await _pushes(pubsub, 5)
        assert [push_item(p) for p in pushes] == [
            Chunk(ids[i], i, 1, payloads[i]) for i in range(5)
        ]
        assert all(p.task_id == task.task_id for p in pushes)
        events = parse_entries(await client.xrange(task.events_key))
        assert [stream_item(e) for e in events] == [
            Chunk(ids[i], i, 1, payloads[i]) for i in range(5)
        ]
        assert 0 < await client.ttl(task.events_key) <= 60  # the task's result TTL, the longer
        assert await client.get(streamed_key(task.task_id)) == b"1"
    finally:
        await pubsub.aclose()
        await client.delete(task.events_key, streamed_key(task.task_id))


@pytest.mark.asyncio
async def test_a_later_run_marks_its_stream_with_a_restart(client: aioredis.Redis) -> None:
    gateway = uuid.uuid4().hex
    task = _task(gateway)
    writer = ChunkWriter(client, max_chunks=100, ttl_seconds=30)
    pubsub = client.pubsub()
    await pubsub.subscribe(task.chunk_channel)
    try:
        await writer.append([ChunkAppend(task, b"a", 0), ChunkAppend(task, b"b", 1)])
        retried = task_pb2.Task()
        retried.CopyFrom(task)
        retried.attempt = 2
        [again] = await writer.append([ChunkAppend(retried, b"A", 0)])
        pushes = [push_item(p) for p in await _pushes(pubsub, 4)]
        events = [stream_item(e) for e in parse_entries(await client.xrange(task.events_key))]
        assert events == pushes
        kinds = [(type(item).__name__, item.attempt) for item in events if item is not None]
        assert kinds == [("Chunk", 1), ("Chunk", 1), ("Restart", 2), ("Chunk", 2)]
        restart = events[2]
        assert isinstance(restart, Restart)
        assert _order(restart.id) < _order(again.event_id) == _order(events[3].id)  # type: ignore[union-attr]
    finally:
        await pubsub.aclose()
        await client.delete(task.events_key, streamed_key(task.task_id))


@pytest.mark.asyncio
async def test_an_asynchronous_task_has_its_pieces_in_its_stream_only(
    client: aioredis.Redis,
) -> None:
    task = _task()
    writer = ChunkWriter(client, max_chunks=100, ttl_seconds=30)
    try:
        await writer.append([ChunkAppend(task, b"x", 0)])
        await writer.append([ChunkAppend(task, b"x", 0)])  # another run
        events = [stream_item(e) for e in parse_entries(await client.xrange(task.events_key))]
        assert [type(e).__name__ for e in events] == ["Chunk", "Restart", "Chunk"]
    finally:
        await client.delete(task.events_key, streamed_key(task.task_id))


@pytest.mark.asyncio
async def test_each_append_answers_the_stop_key(client: aioredis.Redis) -> None:
    first, second = _task(), _task()
    writer = ChunkWriter(client, max_chunks=100, ttl_seconds=30)
    try:
        [before] = await writer.append([ChunkAppend(first, b"a", 0)])
        await request_stop(client, first.task_id, 30)
        after = await writer.append([ChunkAppend(first, b"b", 1), ChunkAppend(second, b"c", 0)])
        assert not before.stop
        assert [o.stop for o in after] == [True, False]
    finally:
        keys = [t.events_key for t in (first, second)]
        await client.delete(*keys, *(streamed_key(t.task_id) for t in (first, second)))
        await client.delete(f"conveyor:stop:{first.task_id}")


@pytest.mark.asyncio
async def test_the_final_event_and_the_result_follow_the_last_piece(
    client: aioredis.Redis,
) -> None:
    gateway = uuid.uuid4().hex
    task = _task(gateway)
    writer = ChunkWriter(client, max_chunks=100, ttl_seconds=30)
    pubsub = client.pubsub()
    await pubsub.subscribe(task.chunk_channel, task.reply_channel)
    try:
        await writer.append([ChunkAppend(task, b"a", 0), ChunkAppend(task, b"b", 1)])
        result = task_pb2.TaskResult(task_id=task.task_id, response=b"ab")
        assert await ResultBackend(client).store_many([(task, result)], 60) == [True]
        channels = [channel for channel, _ in await _messages(pubsub, 3)]
        assert channels == [task.chunk_channel, task.chunk_channel, task.reply_channel]
        kinds = [e.type for e in parse_entries(await client.xrange(task.events_key))]
        assert kinds == ["chunk", "chunk", "done"]
    finally:
        await pubsub.aclose()
        await client.delete(task.events_key, task.result_key, streamed_key(task.task_id))


@pytest.mark.asyncio
async def test_appending_survives_a_flush_of_the_scripts(client: aioredis.Redis) -> None:
    task = _task()
    writer = ChunkWriter(client, max_chunks=100, ttl_seconds=30)
    try:
        await client.script_flush()
        outcomes = await writer.append([ChunkAppend(task, b"a", 0), ChunkAppend(task, b"b", 1)])
        assert [type(o) for o in outcomes] == [AppendOutcome, AppendOutcome]
        assert len(parse_entries(await client.xrange(task.events_key))) == 2  # once each
    finally:
        await client.delete(task.events_key, streamed_key(task.task_id))


@pytest.mark.asyncio
async def test_many_pieces_in_one_call_keep_their_order(client: aioredis.Redis) -> None:
    tasks = [_task(), _task()]
    writer = ChunkWriter(client, max_chunks=1000, ttl_seconds=30)
    try:
        items = [ChunkAppend(t, str(i).encode(), i) for i in range(200) for t in tasks]
        outcomes = await asyncio.wait_for(writer.append(items), 10)
        assert len(outcomes) == 400
        for task in tasks:
            events = [stream_item(e) for e in parse_entries(await client.xrange(task.events_key))]
            assert [e.index for e in events if isinstance(e, Chunk)] == list(range(200))
    finally:
        for task in tasks:
            await client.delete(task.events_key, streamed_key(task.task_id))
