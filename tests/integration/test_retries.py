"""Retries on the real stack: a retryable failure runs again after its backoff, from the delay
lane; the task ends ``done`` once a run succeeds, or ``failed`` after its last retry listing
every attempt's error; a plain exception fails at once; a synchronous caller still gets its
answer; a retry waiting in the delay lane outlives the worker that scheduled it."""

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
import redis

from conveyor.events import TaskEvent, parse_entries
from conveyor.protocol import delay_queue, durable_queue, events_key, result_key
from proto import model_a_pb2, task_pb2
from tests.integration.stack import FLAKY_MODEL, Stack, wait_until

BACKOFF = {"RETRY_BACKOFF_MS": "200", "RETRY_BACKOFF_MAX_MS": "1000"}
"""Small backoffs: retries 1, 2, 3 wait 100-200, 200-400, 400-800 ms, each rounded to its
bucket (128 to 1024 ms)."""


class Flaky:
    """A flaky worker's model on the stack, and what its runs left in Redis."""

    def __init__(self, stack: Stack, **env: str) -> None:
        self.stack = stack
        self.model = stack.model_name("flaky")
        self.prefix = f"test:{stack.id}:flaky:{self.model}:"
        self.env = {"FLAKY_MODEL_COUNTER_PREFIX": self.prefix, **env}
        self.redis = redis.Redis.from_url(stack.redis_url)
        self.worker = stack.start_worker(FLAKY_MODEL, self.model, **self.env)

    def submit(self, data: str, **params: str) -> str:
        response = self.stack.http.post(
            f"/predict/{self.model}", params={"mode": "async", **params}, json={"data": data}
        )
        assert response.status_code == 202, response.text
        return str(response.json()["task_id"])

    def status(self, task_id: str, timeout: float = 60.0) -> str:
        """The task's final status from ``GET /tasks/{id}``, once it is not pending."""

        def final() -> str | None:
            status = str(self.stack.http.get(f"/tasks/{task_id}").json()["status"])
            return None if status == "pending" else status

        return wait_until(final, timeout, interval=0.1, what=f"task {task_id} finished")

    def result(self, task_id: str) -> task_pb2.TaskResult:
        raw = self.redis.get(result_key(task_id))
        assert isinstance(raw, bytes)
        return task_pb2.TaskResult.FromString(raw)

    def events(self, task_id: str) -> list[TaskEvent]:
        entries: Any = self.redis.xrange(events_key(task_id))
        return parse_entries(entries)

    def runs(self, tag: str) -> list[int]:
        """The start of each run of ``tag`` (Unix ms)."""
        return [int(run) for run in self.redis.lrange(f"{self.prefix}{tag}:runs", 0, -1)]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="600") as stack:
        yield stack


@pytest.fixture(scope="module")
def flaky(stack: Stack) -> Iterator[Flaky]:
    flaky = Flaky(stack, **BACKOFF)
    try:
        yield flaky
    finally:
        flaky.redis.close()


def _retrying(events: list[TaskEvent]) -> list[TaskEvent]:
    return [e for e in events if e.type == "retrying"]


def test_fails_twice_then_succeeds_after_two_retries_with_backoff(flaky: Flaky) -> None:
    task_id = flaky.submit("twice:2")
    assert flaky.status(task_id) == "done"
    result = flaky.result(task_id)
    assert result.attempt == 3
    assert model_a_pb2.ModelAResponse.FromString(result.response).reply == "tag=twice run=3"
    assert [e.message for e in result.failed_attempts] == [
        "RetryableError: run 1 of twice failed",
        "RetryableError: run 2 of twice failed",
    ]
    assert {e.code for e in result.failed_attempts} == {task_pb2.TaskError.MODEL_ERROR}
    events = flaky.events(task_id)
    assert [(e.type, e.fields.get("attempt")) for e in events] == [
        ("queued", None),
        ("started", "1"),
        ("retrying", "1"),
        ("started", "2"),
        ("retrying", "2"),
        ("started", "3"),
        ("done", None),
    ]
    delays = [int(e.fields["delay_ms"]) for e in _retrying(events)]
    runs = flaky.runs("twice")
    assert len(runs) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    print(f"retry delays {delays} ms; runs {gaps} ms apart")
    assert all(128 <= delay <= 1024 for delay in delays)
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True))


def test_always_failing_ends_failed_after_max_retries_listing_each_attempt(flaky: Flaky) -> None:
    task_id = flaky.submit("always:always", max_retries="2")
    assert flaky.status(task_id) == "failed"
    result = flaky.result(task_id)
    assert result.attempt == 3
    assert result.error.code == task_pb2.TaskError.MODEL_ERROR
    assert result.error.message == "RetryableError: run 3 of always failed"
    assert [e.message for e in result.failed_attempts] == [
        f"RetryableError: run {n} of always failed" for n in (1, 2)
    ]
    assert len(flaky.runs("always")) == 3
    events = flaky.events(task_id)
    assert len(_retrying(events)) == 2
    assert events[-1].type == "failed" and events[-1].fields["code"] == "model_error"


def test_a_plain_exception_fails_after_one_run(flaky: Flaky) -> None:
    task_id = flaky.submit("plain:crash")
    assert flaky.status(task_id) == "failed"
    result = flaky.result(task_id)
    assert result.attempt == 1
    assert not result.failed_attempts
    assert result.error.message == "ValueError: plain is broken for good"
    assert len(flaky.runs("plain")) == 1
    assert not _retrying(flaky.events(task_id))


def test_a_synchronous_predict_is_answered_after_its_retry(flaky: Flaky) -> None:
    response = flaky.stack.http.post(
        f"/predict/{flaky.model}", params={"timeout": "30"}, json={"data": "sync:1"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"reply": "tag=sync run=2"}
    runs = flaky.runs("sync")
    assert len(runs) == 2 and runs[1] - runs[0] >= 128


def test_a_retry_in_the_delay_lane_outlives_its_worker(stack: Stack) -> None:
    # One backoff of 4-8 s (a bucket of 4096 or 8192 ms): time to stop the worker meanwhile.
    flaky = Flaky(stack, RETRY_BACKOFF_MS="8000", RETRY_BACKOFF_MAX_MS="8000")
    try:
        task_id = flaky.submit("restart:1")

        def retrying() -> TaskEvent | None:
            found = _retrying(flaky.events(task_id))
            return found[0] if found else None

        event = wait_until(retrying, 60.0, interval=0.05, what="the retry scheduled")
        scheduled = time.monotonic()
        delay_ms = int(event.fields["delay_ms"])
        assert flaky.worker.stop() == 0
        stopped = time.monotonic() - scheduled
        waiting, queued = asyncio.run(
            _ready(
                stack.amqp_url,
                delay_queue(flaky.model, "1", delay_ms),
                durable_queue(flaky.model, "1"),
            )
        )
        print(f"worker stopped {stopped:.1f} s into a {delay_ms} ms retry delay")
        if stopped < delay_ms / 1000 - 0.5:
            assert (waiting, queued) == (1, 0)  # in the delay lane, no worker alive
        assert waiting + queued == 1
        flaky.stack.start_worker(FLAKY_MODEL, flaky.model, **flaky.env)
        assert flaky.status(task_id) == "done"
        result = flaky.result(task_id)
        assert result.attempt == 2
        assert [e.message for e in result.failed_attempts] == [
            "RetryableError: run 1 of restart failed"
        ]
        runs = flaky.runs("restart")
        assert len(runs) == 2 and runs[1] - runs[0] >= delay_ms
    finally:
        flaky.redis.close()


async def _ready(amqp_url: str, *queues: str) -> list[int]:
    """The ready messages of each of ``queues``."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        counts = []
        for name in queues:
            queue = await channel.declare_queue(name, passive=True)
            counts.append(queue.declaration_result.message_count or 0)
        return counts
    finally:
        await connection.close()
