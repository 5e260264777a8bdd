"""Retries in the worker: the executor turns a retryable failure with a retry left into a
``Retry`` (not an answer, not counted), each task of a batch on its own; the scheduler publishes
it to the delay lane, notes it, and settles the failed delivery exactly once, without holding up
the runner; a retry the lane refuses sends the delivery back to its queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

import pytest
from google.protobuf.message import Message as ProtoMessage

from proto import model_a_pb2, task_pb2
from worker_base import InvalidRequest, MessageDescriptor, Model, RetryableError, Settings, Worker
from worker_base.execution import TaskRunner
from worker_base.retries import RetryScheduler
from worker_base.scheduler import Delivery
from worker_base.settle import Pack, Settler
from worker_base.tests.fakes import Delivered, task_runner


class Flaky(Model):
    """``data`` picks the outcome: "retry" raises ``RetryableError``, "timeout" a ``TimeoutError``
    (declared transient), "crash" a ``ValueError``, "bad" an ``InvalidRequest``; anything else is
    upper-cased."""

    name = "flaky"
    retry_on: ClassVar[tuple[type[Exception], ...]] = (TimeoutError,)
    max_retries = 2

    async def process_request(self, body: bytes) -> ProtoMessage:
        return _outcome(body, raising=True)

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


class BatchFlaky(Flaky):
    max_batch_size = 8

    async def process_batch(self, bodies: Sequence[bytes]) -> Sequence[ProtoMessage | Exception]:
        return [_outcome(body, raising=False) for body in bodies]


def _outcome(body: bytes, raising: bool) -> Any:
    data = model_a_pb2.ModelARequest.FromString(body).data
    failures: dict[str, Exception] = {
        "retry": RetryableError("the store is busy"),
        "timeout": TimeoutError("upstream timed out"),
        "crash": ValueError("broken"),
        "bad": InvalidRequest("bad data", field="data"),
    }
    if data in failures:
        if raising:
            raise failures[data]
        return failures[data]
    return model_a_pb2.ModelAResponse(reply=data.upper())


def _task(data: str, task_id: str = "t", attempt: int = 1, sync: bool = False) -> task_pb2.Task:
    return task_pb2.Task(
        task_id=task_id,
        model="flaky_test",
        version="1",
        payload=model_a_pb2.ModelARequest(data=data).SerializeToString(),
        result_key=f"k:{task_id}",
        reply_channel="conveyor:reply:g" if sync else "",
        attempt=attempt,
    )


def _worker(model: Model) -> Worker:
    return Worker(model, Settings(model_name="flaky_test", retry_backoff_ms=100))


# The decision.


@pytest.mark.asyncio
async def test_a_retryable_failure_is_a_retry_not_an_answer() -> None:
    worker = _worker(Flaky())
    results, retries = await worker.executor.attempt_batch([_task("retry")], [False])
    retry = retries[0]
    assert retry.task.attempt == 2
    assert [e.message for e in retry.task.failed_attempts] == ["RetryableError: the store is busy"]
    assert retry.error.code == task_pb2.TaskError.MODEL_ERROR
    assert retry.delay_ms in worker.retry_policy.buckets()
    assert results[0].error.message == "RetryableError: the store is busy"  # the attempt's
    assert worker.stats.take() is None  # not answered: nothing counted


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "retried", "code"),
    [
        ("timeout", True, task_pb2.TaskError.MODEL_ERROR),  # a type in retry_on
        ("crash", False, task_pb2.TaskError.MODEL_ERROR),  # a plain exception: final
        ("bad", False, task_pb2.TaskError.INVALID_ARGUMENT),
        ("ok", False, None),
    ],
)
async def test_only_transient_failures_are_retried(data: str, retried: bool, code: Any) -> None:
    results, retries = await _worker(Flaky()).executor.attempt_batch([_task(data)], [False])
    assert bool(retries) == retried
    if code is not None:
        assert results[0].error.code == code


@pytest.mark.asyncio
async def test_an_invalid_request_is_final_even_when_every_exception_is_transient() -> None:
    class Eager(Flaky):
        retry_on = (Exception,)

    results, retries = await _worker(Eager()).executor.attempt_batch([_task("bad")], [False])
    assert not retries
    assert results[0].error.code == task_pb2.TaskError.INVALID_ARGUMENT


@pytest.mark.asyncio
async def test_the_last_attempt_fails_listing_every_earlier_one() -> None:
    worker = _worker(Flaky())  # max_retries 2: three runs
    task = _task("retry", attempt=3)
    for n in (1, 2):
        task.failed_attempts.add(code=task_pb2.TaskError.MODEL_ERROR, message=f"run {n}")
    results, retries = await worker.executor.attempt_batch([task], [False])
    assert not retries
    result = results[0]
    assert result.attempt == 3
    assert result.error.code == task_pb2.TaskError.MODEL_ERROR
    assert result.error.message == "RetryableError: the store is busy"
    assert [e.message for e in result.failed_attempts] == ["run 1", "run 2"]
    delta = worker.stats.take()
    assert delta is not None and delta.increments["fail_count"] == 1  # the final outcome counts


@pytest.mark.asyncio
async def test_the_request_bounds_the_retries() -> None:
    task = _task("retry")
    task.max_retries = 0
    _, retries = await _worker(Flaky()).executor.attempt_batch([task], [False])
    assert not retries


@pytest.mark.asyncio
async def test_each_task_of_a_batch_decides_on_its_own() -> None:
    worker = _worker(BatchFlaky())
    assert worker.executor.batching
    tasks = [_task("ok", "a"), _task("retry", "b"), _task("retry", "c", attempt=3)]
    tasks.append(_task("crash", "d"))
    results, retries = await worker.executor.attempt_batch(tasks, [False] * 4)
    assert set(retries) == {1}
    assert results[0].WhichOneof("outcome") == "response"
    assert [results[i].error.code for i in (2, 3)] == [task_pb2.TaskError.MODEL_ERROR] * 2
    delta = worker.stats.take()
    assert delta is not None
    assert delta.increments["success_count"] == 1 and delta.increments["fail_count"] == 2
    assert delta.increments["execution_count"] == 1


@pytest.mark.asyncio
async def test_a_batch_that_raises_retries_each_task_with_retries_left() -> None:
    class Down(BatchFlaky):
        async def process_batch(
            self, bodies: Sequence[bytes]
        ) -> Sequence[ProtoMessage | Exception]:
            raise RetryableError("the GPU is busy")

    tasks = [_task("x", "a"), _task("y", "b", attempt=3)]
    _, retries = await _worker(Down()).executor.attempt_batch(tasks, [False, False])
    assert set(retries) == {0}


# Scheduling and settling.


class Lane:
    """A delay lane that records what it holds, fails when told, or waits until let go."""

    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log = log
        self.fail = fail
        self.go = asyncio.Event()
        self.go.set()

    async def publish(self, task: task_pb2.Task, delay_ms: int) -> None:
        await self.go.wait()
        if self.fail:
            raise ConnectionError("the broker is gone")
        self.log.append(f"publish attempt {task.attempt} after {delay_ms} ms")


class Notes:
    """``ResultBackend.retrying``, recorded."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def retrying(self, task: task_pb2.Task, error: task_pb2.TaskError, delay_ms: int) -> int:
        self.log.append(f"retrying attempt {task.attempt} ({error.message})")
        return 1


async def _store(items: list[tuple[task_pb2.Task, task_pb2.TaskResult]]) -> None:
    return None


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never: {what}")


def _retries_of(worker: Worker, log: list[str], lane: Lane) -> tuple[Settler, RetryScheduler]:
    settler = Settler(_store)
    scheduler = RetryScheduler(lane, settler, Notes(log), worker.metrics)  # type: ignore[arg-type]
    return settler, scheduler


async def _retried(
    data: str, sync: bool, fail: bool = False
) -> tuple[list[str], Worker, Settler, Delivery]:
    log: list[str] = []
    worker = _worker(Flaky())
    settler, scheduler = _retries_of(worker, log, Lane(log, fail))
    message = Delivered(log)
    settler.opened(message)  # type: ignore[arg-type]
    delivery = worker.scheduler.make(_task(data, sync=sync), message, "durable")  # type: ignore[arg-type]
    _, retries = await worker.executor.attempt_batch([delivery.task], [False])
    scheduler.schedule([(delivery, retries[0])])
    await _until(lambda: settler.unsettled == 0, "settled")
    return log, worker, settler, delivery


def _retries_counted(worker: Worker) -> float | None:
    return worker.metrics.registry.get_sample_value(
        "conveyor_task_retries_total", {"model": "flaky_test", "version": "1"}
    )


@pytest.mark.asyncio
async def test_published_then_noted_then_acknowledged_once() -> None:
    log, worker, settler, delivery = await _retried("retry", sync=False)
    assert log[0].startswith("publish attempt 2 after ")
    assert log[1:] == ["retrying attempt 1 (RetryableError: the store is busy)", "ack"]
    assert _retries_counted(worker) == 1
    await settler.release([delivery], requeue=True)  # settled already: nothing happens
    assert log[-1] == "ack" and settler.unsettled == 0


@pytest.mark.asyncio
async def test_a_synchronous_task_has_no_event_stream_to_note_it_in() -> None:
    log, _, _, _ = await _retried("retry", sync=True)
    assert [entry.split()[0] for entry in log] == ["publish", "ack"]


@pytest.mark.asyncio
async def test_a_retry_the_lane_refuses_sends_the_delivery_back_to_its_queue() -> None:
    log, worker, _, _ = await _retried("retry", sync=False, fail=True)
    assert log == ["requeue"]
    assert not _retries_counted(worker)


async def _served(runner: TaskRunner, done: Callable[[], Awaitable[None]]) -> None:
    serving = asyncio.create_task(runner.serve())
    try:
        await done()
    finally:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving


@pytest.mark.asyncio
@pytest.mark.parametrize(("fail", "settled"), [(False, "ack"), (True, "requeue")])
async def test_a_packed_message_is_settled_once_after_its_answer_and_its_retry(
    fail: bool, settled: str
) -> None:
    log: list[str] = []
    worker = _worker(BatchFlaky())
    lane = Lane(log, fail)
    lane.go.clear()  # the retry's publish waits: the runner must not
    settler, retries = _retries_of(worker, log, lane)
    message = Delivered(log)
    settler.opened(message)  # type: ignore[arg-type]
    pack = Pack(message, 2)  # type: ignore[arg-type]
    for data, task_id in (("retry", "a"), ("ok", "b")):
        task = _task(data, task_id, sync=True)
        await worker.scheduler.put(worker.scheduler.make(task, message, "sync", pack))  # type: ignore[arg-type]

    async def done() -> None:
        await _until(lambda: pack.open == 1, "the answer settled while the retry waits")
        assert log == [] and settler.unsettled == 1
        lane.go.set()
        await _until(lambda: settler.unsettled == 0, "the message settled")

    await _served(task_runner(worker, settler, (8, 0.0), retries), done)
    assert log[-1] == settled and log.count(settled) == 1
