"""The statistics a worker keeps (``conveyor.stats``): what its executor counts per task and per
model call, and how they reach the version's hash in a real Redis with the results' store."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from google.protobuf.message import Message

from conveyor.protocol import stats_key
from conveyor.results import ResultBackend, now_ms
from conveyor.stats import StatsReader
from proto import model_a_pb2, task_pb2
from worker_base import InvalidRequest, MessageDescriptor, Model, Settings, Worker


class Upper(Model):
    """Upper-cases ``data``; "bad" is an invalid request. Batches when ``max_batch_size`` > 1."""

    name = "upper"

    async def process_request(self, body: bytes) -> Message:
        data = model_a_pb2.ModelARequest.FromString(body).data
        if data == "bad":
            raise InvalidRequest("bad data", field="data")
        return model_a_pb2.ModelAResponse(reply=data.upper())

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


class BatchUpper(Upper):
    max_batch_size = 8

    async def process_batch(self, bodies: Sequence[bytes]) -> Sequence[Message | Exception]:
        outcomes: list[Message | Exception] = []
        for body in bodies:
            try:
                outcomes.append(await self.process_request(body))
            except InvalidRequest as e:
                outcomes.append(e)
        return outcomes


def _task(data: str, created_ms: int, deadline_ms: int = 0) -> task_pb2.Task:
    task_id = uuid.uuid4().hex
    return task_pb2.Task(
        task_id=task_id,
        payload=model_a_pb2.ModelARequest(data=data).SerializeToString(),
        result_key=f"conveyor:test:result:{task_id}",
        created_unix_ms=created_ms,
        deadline_unix_ms=deadline_ms,
    )


def _worker(model: Model) -> Worker:
    return Worker(model, Settings(model_name=f"stats_{uuid.uuid4().hex[:8]}"))


@pytest.mark.asyncio
async def test_a_batch_is_one_execution_failures_count_apart() -> None:
    worker = _worker(BatchUpper())
    created = now_ms() - 50  # waited about 50 ms in the queue
    tasks = [
        _task("x", created),
        _task("y", created),
        _task("bad", created),
        _task("late", created, deadline_ms=now_ms() - 1000),
    ]
    await worker.executor.execute_batch(tasks, [False] * 4)
    delta = worker.stats.take()
    assert delta is not None and delta.key == stats_key(worker.model_name, worker.version)
    counts = delta.increments
    assert counts["success_count"] == counts["inference_count"] == 2
    assert counts["queue_count"] == counts["compute_infer_count"] == 2
    assert counts["execution_count"] == 1  # one model call for the whole batch
    assert counts["fail_count"] == 2  # the invalid one and the one past its deadline
    assert counts["queue_ns"] >= 2 * 50_000_000
    assert counts["compute_infer_ns"] > 0
    assert counts["success_ns"] == counts["queue_ns"] + counts["compute_infer_ns"]
    assert counts["fail_ns"] >= 2 * 50_000_000
    assert delta.last_inference_ms >= created
    assert worker.stats.take() is None  # taken: nothing left until the next tasks


@pytest.mark.asyncio
async def test_without_batching_each_request_is_an_execution() -> None:
    worker = _worker(Upper())
    assert not worker.executor.batching
    for data in ("a", "b", "bad"):
        await worker.executor.execute(_task(data, now_ms()))
    delta = worker.stats.take()
    assert delta is not None
    assert delta.increments["execution_count"] == delta.increments["success_count"] == 2
    assert delta.increments["fail_count"] == 1


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_the_counts_reach_the_versions_hash_with_the_results(
    redis: aioredis.Redis,
) -> None:
    worker = _worker(BatchUpper())
    key = stats_key(worker.model_name, worker.version)
    backend = ResultBackend(redis)
    first = [_task("x", now_ms()), _task("bad", now_ms())]
    second = [_task("y", now_ms())]
    try:
        results = await worker.executor.execute_batch(first, [False, False])
        delta = worker.stats.take()
        assert delta is not None
        items = list(zip(first, results, strict=True))
        # One answer per result: the statistics' replies are not among them.
        assert await backend.store_many(items, ttl=60, stats=delta) == [True, True]
        assert delta.written
        # Stored again (as after too few replicas confirmed): the counts are not added again.
        assert await backend.store_many(items, ttl=60, stats=delta) == [False, False]

        results = await worker.executor.execute_batch(second, [False])
        later = worker.stats.take()
        assert later is not None
        backend._store_sha = "0" * 40  # a script Redis does not hold (as after a restart)
        stored = await backend.store_many(list(zip(second, results, strict=True)), 60, stats=later)
        assert stored == [True]  # stored on the second try, the counts added once

        [counts] = await StatsReader(redis).read([(worker.model_name, worker.version)])
        assert counts["success_count"] == counts["inference_count"] == 2
        assert counts["execution_count"] == 2
        assert counts["fail_count"] == 1
        assert counts["compute_infer_count"] == counts["queue_count"] == 2
        assert counts["compute_infer_ns"] > 0 and counts["success_ns"] > 0
        assert counts["last_inference_ms"] == later.last_inference_ms
        assert await redis.ttl(key) == -1  # kept: the statistics outlive the workers
        assert await StatsReader(redis).read([(worker.model_name, "never")]) == [{}]
    finally:
        await redis.delete(key, *(task.result_key for task in (*first, *second)))


def test_counts_are_taken_at_most_once_a_period() -> None:
    worker = _worker(Upper())
    tally = worker.stats
    assert tally.take(100.0, 0.02) is None  # nothing recorded
    tasks = [_task("a", now_ms())]
    results = [task_pb2.TaskResult(response=b"")]

    def record() -> None:
        tally.record(
            tasks, results, [0], started_ns=1, compute_ns=1, finished_ns=10**18, one_call=False
        )

    record()
    assert tally.take(100.0, 0.02) is not None  # the first write is never held back
    record()
    assert tally.pending
    assert tally.take(100.01, 0.02) is None  # 10 ms after the last write: left for later
    delta = tally.take(100.03, 0.02)
    assert delta is not None and delta.increments["success_count"] == 1
    assert tally.take() is None
