"""A task's life in Redis, written by the scripts of ``conveyor.results`` over a real Redis: the
submit starts the stream with ``queued`` and a place in line, a claim appends ``started`` and
counts the task started, the store of the final result appends the final event and the callback
entry in the same script, a cancel does the same, a retry gets a new place in line."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from conveyor.events import final_type, parse_entries
from conveyor.protocol import CALLBACKS_STREAM, events_key, queue_counts_key, result_key
from conveyor.results import CancelOutcome, ResultBackend, TaskRecord
from proto import task_pb2


@pytest_asyncio.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    yield redis
    await redis.aclose()


def _task(model: str, callback: str = "") -> task_pb2.Task:
    task_id = uuid.uuid4().hex
    return task_pb2.Task(
        task_id=task_id,
        model=model,
        version="1",
        result_key=result_key(task_id),
        events_key=events_key(task_id),
        callback_url=callback,
        result_ttl_seconds=60,
        attempt=1,
    )


async def _callbacks_to(client: aioredis.Redis, url: str) -> list[dict[str, str]]:
    """The callback entries for ``url`` (each test's URL is its own)."""
    return [
        dict(e.fields)
        for e in parse_entries(await client.xrange(CALLBACKS_STREAM))
        if e.fields.get("url") == url
    ]


async def _forget_callbacks_to(client: aioredis.Redis, url: str) -> None:
    """Remove this test's entries from the shared callbacks stream."""
    for event in parse_entries(await client.xrange(CALLBACKS_STREAM)):
        if event.fields.get("url") == url:
            await client.xdel(CALLBACKS_STREAM, event.id)


async def _kinds(client: aioredis.Redis, task: task_pb2.Task) -> list[str]:
    return [e.type for e in parse_entries(await client.xrange(task.events_key))]


@pytest.mark.asyncio
async def test_submit_claim_store_write_the_life_and_the_callback(client: aioredis.Redis) -> None:
    backend = ResultBackend(client)
    model = f"events-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:9/{uuid.uuid4().hex}"
    first, second = _task(model, callback=url), _task(model)
    record = TaskRecord(model, "1", 0, events=True, callback_url=url)
    try:
        assert await backend.submit(first.task_id, record, 60) == 1
        assert await backend.submit(second.task_id, TaskRecord(model, "1", 0, events=True), 60) == 2
        assert await backend.claim(first, 60, "worker-1")
        assert int(await client.hget(queue_counts_key(model, "1"), "started") or 0) == 1
        started = parse_entries(await client.xrange(first.events_key))[-1]
        assert started.type == "started" and started.fields == {
            "attempt": "1",
            "worker": "worker-1",
        }
        done = task_pb2.TaskResult(task_id=first.task_id, response=b"ok")
        assert await backend.store_many([(first, done)], ttl=60) == [True]
        assert await _kinds(client, first) == ["queued", "started", "done"]
        assert 0 < await client.ttl(first.events_key) <= 60
        # A second store (a redelivered task) adds neither an event nor a callback.
        assert await backend.store_many([(first, done)], ttl=60) == [False]
        assert await _kinds(client, first) == ["queued", "started", "done"]
        entries = await _callbacks_to(client, url)
        assert entries == [{"task_id": first.task_id, "url": url, "status": "done"}]
        # The second task runs and is retried: a retrying event with a new place in line, and
        # no longer running (it may be cancelled while it waits).
        assert await backend.claim(second, 60, "worker-1")
        error = task_pb2.TaskError(code=task_pb2.TaskError.MODEL_ERROR, message="flaky")
        assert await backend.retrying(second, error, 250) == 3
        assert not await client.exists(f"conveyor:running:{second.task_id}")
        retrying = parse_entries(await client.xrange(second.events_key))[-1]
        assert retrying.type == "retrying"
        assert retrying.fields["seq"] == "3" and retrying.fields["code"] == "model_error"
    finally:
        await _forget_callbacks_to(client, url)
        await client.delete(
            first.events_key, second.events_key, first.result_key, queue_counts_key(model, "1"),
            f"conveyor:task:{first.task_id}", f"conveyor:task:{second.task_id}",
            f"conveyor:running:{first.task_id}",
        )  # fmt: skip


@pytest.mark.asyncio
async def test_cancel_ends_the_stream_and_queues_the_callback(client: aioredis.Redis) -> None:
    backend = ResultBackend(client)
    url = f"http://127.0.0.1:9/{uuid.uuid4().hex}"
    task = _task(f"events-{uuid.uuid4().hex[:8]}", callback=url)
    record = TaskRecord(task.model, "1", 0, events=True, callback_url=url)
    cancelled = task_pb2.TaskResult(task_id=task.task_id)
    cancelled.error.code = task_pb2.TaskError.CANCELLED
    try:
        await backend.submit(task.task_id, record, 60)
        outcome, _ = await backend.cancel(task.task_id, cancelled, 60, record)
        assert outcome is CancelOutcome.CANCELLED
        assert await _kinds(client, task) == ["queued", "cancelled"]
        statuses = [entry["status"] for entry in await _callbacks_to(client, url)]
        assert statuses == ["cancelled"]
        # A worker that takes it later finds the result and is not claimed, but counts started.
        assert not await backend.claim(task, 60, "worker-1")
        assert await _kinds(client, task) == ["queued", "cancelled"]
    finally:
        await _forget_callbacks_to(client, url)
        await client.delete(
            task.events_key, task.result_key, queue_counts_key(task.model, "1"),
            f"conveyor:task:{task.task_id}",
        )  # fmt: skip


def test_final_type_names_the_outcome() -> None:
    assert final_type(task_pb2.TaskResult(response=b"x")) == "done"
    failed = task_pb2.TaskResult()
    failed.error.code = task_pb2.TaskError.DEADLINE_EXCEEDED
    assert final_type(failed) == "failed"
    failed.error.code = task_pb2.TaskError.CANCELLED
    assert final_type(failed) == "cancelled"
