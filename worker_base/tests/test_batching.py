"""Dynamic batching: one model call per batch, one result per task, a failing item fails alone."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from google.protobuf.message import Message

from conveyor.results import now_ms
from proto import model_a_pb2, task_pb2
from worker_base import InvalidRequest, MessageDescriptor, Model, Settings, Worker


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


def _task(task_id: str, data: str, deadline_ms: int = 0) -> task_pb2.Task:
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
    tasks = [_task("a", "x"), _task("b", "bad"), _task("c", "boom"), _task("d", "y")]
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
    tasks = [_task("late", "x", deadline_ms=now_ms() - 1000), _task("ok", "y")]
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
    results = await worker.executor.execute_batch([_task("a", "x"), _task("b", "y")], [False] * 2)
    assert [r.error.code for r in results] == [task_pb2.TaskError.MODEL_ERROR] * 2


def test_max_batch_size_one_turns_batching_off() -> None:
    worker = Worker(Upper(), Settings(model_name="upper_test", max_batch_size=1))
    assert worker.batch_size == 1 and not worker.executor.batching
    bigger = Worker(Upper(), Settings(model_name="upper_test", max_batch_size=32))
    assert bigger.batch_size == 32 and bigger.prefetch >= 32
