"""Running tasks: a failing model becomes that task's error result, the worker never raises;
dynamic batching: one model call per batch, one result per task, a failing item fails alone."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from google.protobuf.message import Message

from conveyor.results import now_ms
from proto import model_a_pb2, task_pb2
from worker_base import InvalidRequest, MessageDescriptor, Model, Settings, Worker


class Echo(Model):
    name = "echo"

    def __init__(self, behaviour: str = "ok") -> None:
        self.behaviour = behaviour
        self.calls = 0

    async def process_request(self, body: bytes) -> Message:
        self.calls += 1
        request = model_a_pb2.ModelARequest.FromString(body)
        if self.behaviour == "invalid":
            raise InvalidRequest("data must not be empty", field="data")
        if self.behaviour == "crash":
            raise ZeroDivisionError("boom")
        if self.behaviour == "wrong_type":
            return model_a_pb2.ModelARequest(data="oops")
        return model_a_pb2.ModelAResponse(reply=request.data.upper())

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


def _task(data: str = "hi", deadline_ms: int = 0) -> task_pb2.Task:
    return task_pb2.Task(
        task_id="t1",
        model="echo",
        payload=model_a_pb2.ModelARequest(data=data).SerializeToString(),
        deadline_unix_ms=deadline_ms,
        result_key="k",
    )


def _worker(model: Model) -> Worker:
    return Worker(model, Settings(model_name="echo_test"))


@pytest.mark.asyncio
async def test_success_stores_the_response() -> None:
    result = await _worker(Echo()).execute(_task("hi"))
    assert result.WhichOneof("outcome") == "response"
    assert model_a_pb2.ModelAResponse.FromString(result.response).reply == "HI"
    assert result.model == "echo_test"
    assert result.task_id == "t1"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        ("invalid", task_pb2.TaskError.INVALID_ARGUMENT),
        ("crash", task_pb2.TaskError.MODEL_ERROR),
        ("wrong_type", task_pb2.TaskError.MODEL_ERROR),
    ],
)
async def test_failures_become_error_results(behaviour: str, code: int) -> None:
    result = await _worker(Echo(behaviour)).execute(_task())
    assert result.WhichOneof("outcome") == "error"
    assert result.error.code == code
    assert result.error.message


@pytest.mark.asyncio
async def test_invalid_request_names_the_field() -> None:
    result = await _worker(Echo("invalid")).execute(_task())
    assert result.error.field == "data"


@pytest.mark.asyncio
async def test_expired_deadline_is_an_error_without_running() -> None:
    model = Echo()
    past = int(time.time() * 1000) - 1000
    result = await _worker(model).execute(_task(deadline_ms=past))
    assert result.error.code == task_pb2.TaskError.DEADLINE_EXCEEDED
    assert model.calls == 0


@pytest.mark.asyncio
async def test_undecodable_payload_is_a_bad_task() -> None:
    task = _task()
    task.payload = b"\xff\xff"
    result = await _worker(Echo()).execute(task)
    assert result.error.code == task_pb2.TaskError.BAD_TASK


# Dynamic batching.


class Upper(Model):
    """Upper-cases ``data`` in batches; "bad" is invalid, "boom" crashes its item."""

    name = "upper"
    max_batch_size = 8

    def __init__(self) -> None:
        self.batches: list[int] = []

    async def process_request(self, body: bytes) -> Message:
        raise AssertionError("a batching model is called with batches")

    async def process_batch(self, bodies: Sequence[bytes]) -> Sequence[Message | Exception]:
        self.batches.append(len(bodies))
        outcomes: list[Message | Exception] = []
        for body in bodies:
            data = model_a_pb2.ModelARequest.FromString(body).data
            if data == "bad":
                outcomes.append(InvalidRequest("bad data", field="data"))
            elif data == "boom":
                outcomes.append(RuntimeError("boom"))
            else:
                outcomes.append(model_a_pb2.ModelAResponse(reply=data.upper()))
        return outcomes

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


def _batch_task(task_id: str, data: str, deadline_ms: int = 0) -> task_pb2.Task:
    return task_pb2.Task(
        task_id=task_id,
        payload=model_a_pb2.ModelARequest(data=data).SerializeToString(),
        deadline_unix_ms=deadline_ms,
        result_key=task_id,
    )


@pytest.mark.asyncio
async def test_one_call_per_batch_and_each_task_answered_on_its_own() -> None:
    model = Upper()
    worker = Worker(model, Settings(model_name="upper_test"))
    assert worker.batch_size == 8 and worker.executor.batching
    tasks = [
        _batch_task("a", "x"),
        _batch_task("b", "bad"),
        _batch_task("c", "boom"),
        _batch_task("d", "y"),
    ]
    results = await worker.executor.execute_batch(tasks, [False] * 4)
    assert model.batches == [4]
    assert [r.task_id for r in results] == ["a", "b", "c", "d"]
    assert model_a_pb2.ModelAResponse.FromString(results[0].response).reply == "X"
    assert results[1].error.code == task_pb2.TaskError.INVALID_ARGUMENT
    assert results[1].error.field == "data"
    assert results[2].error.code == task_pb2.TaskError.MODEL_ERROR
    assert "boom" in results[2].error.message
    assert model_a_pb2.ModelAResponse.FromString(results[3].response).reply == "Y"


@pytest.mark.asyncio
async def test_expired_tasks_are_not_run_the_rest_of_the_batch_is() -> None:
    model = Upper()
    worker = Worker(model, Settings(model_name="upper_test"))
    tasks = [_batch_task("late", "x", deadline_ms=now_ms() - 1000), _batch_task("ok", "y")]
    results = await worker.executor.execute_batch(tasks, [False, False])
    assert model.batches == [1]
    assert results[0].error.code == task_pb2.TaskError.DEADLINE_EXCEEDED
    assert results[0].started_unix_ms == 0
    assert results[1].WhichOneof("outcome") == "response"


@pytest.mark.asyncio
async def test_a_batch_that_raises_fails_every_task_in_it() -> None:
    class Broken(Upper):
        async def process_batch(self, bodies: Sequence[bytes]) -> Sequence[Message | Exception]:
            raise RuntimeError("the whole batch broke")

    worker = Worker(Broken(), Settings(model_name="upper_test"))
    results = await worker.executor.execute_batch(
        [_batch_task("a", "x"), _batch_task("b", "y")], [False] * 2
    )
    assert [r.error.code for r in results] == [task_pb2.TaskError.MODEL_ERROR] * 2


def test_max_batch_size_one_turns_batching_off() -> None:
    worker = Worker(Upper(), Settings(model_name="upper_test", max_batch_size=1))
    assert worker.batch_size == 1 and not worker.executor.batching
    bigger = Worker(Upper(), Settings(model_name="upper_test", max_batch_size=32))
    assert bigger.batch_size == 32 and bigger.prefetch >= 32
