"""A failing model becomes that task's error result; the worker never raises."""

import time

import pytest
from google.protobuf.message import Message

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


def test_public_names() -> None:
    import worker_base

    assert set(worker_base.__all__) == {
        "InvalidRequest",
        "MessageDescriptor",
        "Model",
        "SchemaError",
        "Settings",
        "Worker",
        "WorkerError",
        "run_model",
    }
