"""A delivery run at once on a lent turn (``TaskRunner.run_now``): stored and acknowledged like
one a runner takes; without a turn to lend it is left to be queued; cancelled mid-run (its
channel closed), it is returned to its queue, settled once, and the turn given back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.protobuf.message import Message as ProtoMessage

from proto import model_a_pb2, task_pb2
from worker_base import MessageDescriptor, Model, Settings, Worker
from worker_base.execution import TaskRunner
from worker_base.settle import Settler
from worker_base.tests.fakes import Delivered, task_runner


class Gate(Model):
    """Echoes, after ``go`` is set."""

    name = "gate"

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.go.set()

    async def process_request(self, body: bytes) -> ProtoMessage:
        await self.go.wait()
        return model_a_pb2.ModelAResponse(reply=model_a_pb2.ModelARequest.FromString(body).data)

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


def _setup(log: list[str]) -> tuple[Worker, Settler, TaskRunner]:
    worker = Worker(Gate(), Settings(model_name="gate_test"))

    async def store(items: list[tuple[task_pb2.Task, task_pb2.TaskResult]]) -> None:
        log.extend(f"store {task.task_id}" for task, _ in items)

    settler = Settler(store)
    return worker, settler, task_runner(worker, settler, (1, 0.0))


def _delivery(worker: Worker, settler: Settler, log: list[str]) -> Any:
    message = Delivered(log)
    settler.opened(message)  # type: ignore[arg-type]
    task = task_pb2.Task(
        task_id="t",
        payload=model_a_pb2.ModelARequest(data="x").SerializeToString(),
        result_key="k:t",
        reply_channel="conveyor:reply:g",
    )
    return worker.scheduler.make(task, message, "sync")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_with_a_runner_idle_the_delivery_runs_in_the_callers_task() -> None:
    log: list[str] = []
    worker, settler, runner = _setup(log)
    delivery = _delivery(worker, settler, log)
    assert not await runner.run_now(delivery)  # no runner waits: nothing to lend, nothing done
    assert log == [] and len(worker.scheduler) == 0
    serving = asyncio.create_task(runner.serve())
    await asyncio.sleep(0.01)
    assert await runner.run_now(delivery)
    assert log == ["store t", "ack"] and settler.unsettled == 0
    assert worker.scheduler.lend(batching=False)  # the turn was given back
    await worker.scheduler.give_back()
    serving.cancel()


@pytest.mark.asyncio
async def test_cancelled_mid_run_the_delivery_goes_back_to_its_queue_once() -> None:
    log: list[str] = []
    worker, settler, runner = _setup(log)
    serving = asyncio.create_task(runner.serve())
    await asyncio.sleep(0.01)
    assert isinstance(worker.model, Gate)
    worker.model.go.clear()
    running = asyncio.create_task(runner.run_now(_delivery(worker, settler, log)))
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert log == ["requeue"] and settler.unsettled == 0
    assert worker.scheduler.lend(batching=False)  # the turn was given back
    await worker.scheduler.give_back()
    serving.cancel()
