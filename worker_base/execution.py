"""Running the model on tasks and turning every outcome into that task's ``TaskResult``.

Never raises for a model failure: an exception becomes the result of the task it belongs to
(``INVALID_ARGUMENT``, ``BAD_TASK`` or ``MODEL_ERROR``); a task past its deadline is answered
``DEADLINE_EXCEEDED`` without running the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from google.protobuf.message import DecodeError, Message

from conveyor import logs
from conveyor.results import now_ms
from proto import task_pb2
from worker_base.exceptions import InvalidRequest
from worker_base.model import Model

logger = logging.getLogger(__name__)


class Executor:
    """Runs one model on single tasks or batches and builds their results."""

    def __init__(self, model: Model, model_name: str, instance_id: str, batch_size: int) -> None:
        self.model = model
        self.model_name = model_name
        self.instance_id = instance_id
        self.batching = batch_size > 1 and model.implements_batching()
        self._expected = model.get_response_format().full_name

    def result_for(self, task: task_pb2.Task, redelivered: bool = False) -> task_pb2.TaskResult:
        """An empty result for ``task``, naming this worker and model version."""
        return task_pb2.TaskResult(
            task_id=task.task_id,
            model=self.model_name,
            version=self.model.version,
            worker_id=self.instance_id,
            redelivered=redelivered,
        )

    async def execute(self, task: task_pb2.Task, redelivered: bool = False) -> task_pb2.TaskResult:
        """Run the model on one task and return its result."""
        return (await self.execute_batch([task], [redelivered]))[0]

    async def execute_batch(
        self, tasks: Sequence[task_pb2.Task], redelivered: Sequence[bool]
    ) -> list[task_pb2.TaskResult]:
        """Run the model on ``tasks`` (one call when batching) and return one result each."""
        results = [self.result_for(t, r) for t, r in zip(tasks, redelivered, strict=True)]
        now = now_ms()
        runnable: list[int] = []
        for i, task in enumerate(tasks):
            if task.deadline_unix_ms and now > task.deadline_unix_ms:
                results[i].error.code = task_pb2.TaskError.DEADLINE_EXCEEDED
                results[i].error.message = "the deadline passed before a worker took the task"
            else:
                runnable.append(i)
        if runnable:
            started = now_ms()
            outcomes = await self._run([tasks[i].payload for i in runnable])
            for i, outcome in zip(runnable, outcomes, strict=True):
                results[i].started_unix_ms = started
                self._record(tasks[i], results[i], outcome)
        finished = now_ms()
        for result in results:
            result.finished_unix_ms = finished
        return results

    async def _run(self, bodies: list[bytes]) -> Sequence[Message | Exception]:
        if self.batching:
            try:
                outcomes = await self.model.process_batch(bodies)
            except Exception as e:
                return [e] * len(bodies)
            if len(outcomes) != len(bodies):
                error = RuntimeError(
                    f"process_batch returned {len(outcomes)} outcomes for {len(bodies)} requests"
                )
                return [error] * len(bodies)
            return outcomes
        outcomes_one: list[Message | Exception] = []
        for body in bodies:
            try:
                outcomes_one.append(await self.model.process_request(body))
            except Exception as e:
                outcomes_one.append(e)
        return outcomes_one

    def _record(
        self, task: task_pb2.Task, result: task_pb2.TaskResult, outcome: Message | Exception
    ) -> None:
        if isinstance(outcome, InvalidRequest):
            result.error.code = task_pb2.TaskError.INVALID_ARGUMENT
            result.error.message = outcome.message
            result.error.field = outcome.field
        elif isinstance(outcome, DecodeError):
            result.error.code = task_pb2.TaskError.BAD_TASK
            result.error.message = f"cannot decode the request payload: {outcome}"
        elif isinstance(outcome, Exception):
            with logs.bound(task.request_id, task.task_id, self.model_name, task.version):
                logger.error(
                    "model %s failed on task %s: %s: %s",
                    self.model_name,
                    task.task_id,
                    type(outcome).__name__,
                    outcome,
                    exc_info=outcome,
                )
            result.error.code = task_pb2.TaskError.MODEL_ERROR
            result.error.message = f"{type(outcome).__name__}: {outcome}"
        elif outcome.DESCRIPTOR.full_name != self._expected:
            result.error.code = task_pb2.TaskError.MODEL_ERROR
            result.error.message = (
                f"model returned {outcome.DESCRIPTOR.full_name}, expected {self._expected}"
            )
        else:
            result.response = outcome.SerializeToString()
