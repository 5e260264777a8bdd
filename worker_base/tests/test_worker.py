"""The worker's intake, and its public names.

Packed synchronous tasks (``TaskBatch`` messages): each task a delivery of its own, the
message settled once, after its last task: acknowledged, or returned if any task asked."""

from __future__ import annotations

import pytest

from conveyor.protocol import TASK_BATCH_CONTENT_TYPE, TASK_CONTENT_TYPE
from proto import model_a_pb2, task_pb2
from worker_base import MessageDescriptor, Model, Settings, Worker
from worker_base.tests.fakes import Delivered


class Echo(Model):
    name = "echo_packs"

    async def process_request(self, body: bytes) -> model_a_pb2.ModelAResponse:
        return model_a_pb2.ModelAResponse(reply=model_a_pb2.ModelARequest.FromString(body).data)

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


def _message(body: bytes, content_type: str) -> Delivered:
    return Delivered([], body=body, content_type=content_type)


def _task(task_id: str, result_key: str | None = None) -> task_pb2.Task:
    return task_pb2.Task(
        task_id=task_id,
        payload=model_a_pb2.ModelARequest(data=task_id).SerializeToString(),
        result_key=task_id if result_key is None else result_key,
        reply_channel="conveyor:reply:test",
    )


def _packed(*tasks: task_pb2.Task) -> Delivered:
    return _message(task_pb2.TaskBatch(tasks=tasks).SerializeToString(), TASK_BATCH_CONTENT_TYPE)


async def _delivered(worker: Worker, message: Delivered, lane: str = "sync") -> None:
    await worker._on_message(lane, message)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_each_task_of_a_batch_message_is_a_delivery_sharing_the_message() -> None:
    worker = Worker(Echo(), Settings(model_name="echo_packs"))
    message = _packed(_task("a"), _task("b"), _task("no-key", result_key=""), _task("c"))
    await _delivered(worker, message)
    deliveries = await worker.scheduler.take(10, 0)
    assert [d.task.task_id for d in deliveries] == ["a", "b", "c"]  # no key: dropped, logged
    assert {id(d.pack) for d in deliveries} == {id(deliveries[0].pack)}
    assert deliveries[0].pack is not None and deliveries[0].pack.open == 3
    assert worker.settler.unsettled == 1  # the broker's one message
    assert message.log == []


@pytest.mark.asyncio
async def test_the_message_is_acknowledged_once_after_its_last_task_is_stored() -> None:
    worker = Worker(Echo(), Settings(model_name="echo_packs"))
    message = _packed(_task("a"), _task("b"), _task("c"))
    await _delivered(worker, message)
    a, b, c = await worker.scheduler.take(10, 0)
    await worker.settler.release([a, b], requeue=False)  # their results are stored
    assert message.log == []  # c is not stored yet: acknowledging would risk losing it
    await worker.settler.release([c], requeue=False)
    await worker.settler.release([c], requeue=False)  # settling a task twice changes nothing
    assert message.log == ["ack"]
    assert worker.settler.unsettled == 0 and worker.settler.acks.open_count() == 0


@pytest.mark.asyncio
async def test_a_task_whose_store_failed_returns_the_whole_message_to_its_queue() -> None:
    worker = Worker(Echo(), Settings(model_name="echo_packs"))
    message = _packed(_task("a"), _task("b"))
    await _delivered(worker, message)
    a, b = await worker.scheduler.take(10, 0)
    await worker.settler.release([a], requeue=True)  # its store failed
    await worker.settler.release([b], requeue=False)
    assert message.log == ["requeue"]  # redelivered; a stored result is announced again
    assert worker.settler.unsettled == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("message", "lane"),
    [
        (_message(b"\xff\xff not protobuf", TASK_BATCH_CONTENT_TYPE), "sync"),
        (_packed(_task("a", result_key="")), "sync"),  # nothing in it can be answered
        (_packed(_task("a")), "durable"),  # only the fast lane carries packs
    ],
)
async def test_an_unusable_batch_message_is_rejected(message: Delivered, lane: str) -> None:
    worker = Worker(Echo(), Settings(model_name="echo_packs"))
    await _delivered(worker, message, lane)
    assert message.log == ["reject"]
    assert len(worker.scheduler) == 0 and worker.settler.unsettled == 0


@pytest.mark.asyncio
async def test_a_plain_task_message_is_one_delivery_of_its_own() -> None:
    worker = Worker(Echo(), Settings(model_name="echo_packs"))
    message = _message(_task("a").SerializeToString(), TASK_CONTENT_TYPE)
    await _delivered(worker, message)
    [delivery] = await worker.scheduler.take(10, 0)
    assert delivery.pack is None
    await worker.settler.release([delivery], requeue=False)
    assert message.log == ["ack"]


def test_public_names() -> None:
    import worker_base

    assert set(worker_base.__all__) == {
        "InvalidRequest",
        "MessageDescriptor",
        "Model",
        "RetryableError",
        "SchemaError",
        "Settings",
        "TensorModel",
        "TensorSpec",
        "Worker",
        "WorkerError",
        "run_model",
    }


@pytest.mark.asyncio
async def test_results_carry_the_version_the_worker_serves() -> None:
    worker = Worker(Echo(), Settings(model_name="echo_versions", model_version="7"))
    result = await worker.executor.execute(_task("v"))
    assert result.WhichOneof("outcome") == "response", result.error
    assert (result.model, result.version) == ("echo_versions", "7")
    unset = Worker(Echo(), Settings(model_name="echo_versions"))
    assert unset.executor.result_for(_task("w")).version == Echo.version
