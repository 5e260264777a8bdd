"""Running tasks: the worker's runners take deliveries from the scheduler, run the model on
them, and hand every result to settling.

A runner (``TaskRunner.serve``; the worker starts ``WORKER_CONCURRENCY`` of them) takes a batch
(up to the batch size, one task when the model does not batch), skips the tasks answered
already, runs the rest (``Executor``) and hands each result to the ``Settler``, which stores it
and only then acknowledges the task. It does not wait for that: it takes the next batch.

A streamed task (``Task.stream``) runs alone, never in a model batch: the runner runs the other
tasks of its batch first, then each streamed one on its own, through ``process_stream``
(``worker_base.streaming``); its answer is the pieces combined, handed to the ``Settler`` once
its last piece is appended.

``Executor`` never raises for a model failure: an exception becomes the result of the task it
belongs to (``INVALID_ARGUMENT``, ``BAD_TASK`` or ``MODEL_ERROR``; for a stream also
``CANCELLED`` when its client stopped it, ``DEADLINE_EXCEEDED`` past its deadline); a task past
its deadline is answered ``DEADLINE_EXCEEDED`` without running the model. A piece of a stream
that cannot be appended (Redis away) is no model failure: ``ChunkWriteFailed`` reaches the
runner, which returns that task to its queue. A retryable failure with a retry left
is not an answer but a ``Retry`` (``worker_base.retry_policy``), which the runner hands to the
``RetryScheduler`` (``worker_base.retries``) instead of settling. With a ``StatsTally`` it counts
every task it answers there (``conveyor.stats``): the settling flush writes the counts to Redis;
a retried attempt is not counted, only the task's final outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError, Message

from conveyor import logs, tracing
from conveyor.metrics import WorkerMetrics
from conveyor.results import ResultBackend, now_ms
from conveyor.stats import StatsTally
from proto import task_pb2
from worker_base import progress
from worker_base.chunk_flush import ChunkWriteFailed
from worker_base.exceptions import InvalidRequest
from worker_base.model import Model
from worker_base.retries import RetryScheduler
from worker_base.retry_policy import Retry, RetryPolicy, policy_for
from worker_base.scheduler import Delivery, Scheduler
from worker_base.settle import REDIS_RETRY_DELAY, Settler, until_redis_answers
from worker_base.streaming import StreamDeadline, StreamRun, StreamStopped, StreamTooLong
from worker_base.task_spans import model_call, outcome

__all__ = ["Attempts", "Executor", "TaskRunner"]

logger = logging.getLogger(__name__)

_NO_RETRIES: Mapping[int, Retry] = MappingProxyType({})


Attempts = tuple[list[task_pb2.TaskResult], Mapping[int, Retry]]
"""What one run of a batch made of its tasks: one result per task, in order (for a task to be
retried, its attempt's error), and the tasks to run again by index (``Retry``: not answered,
not counted in the statistics). A plain tuple: it is made for every batch."""


class Executor:
    """Runs one model on single tasks or batches and builds their results; counts them in
    ``stats`` when given."""

    def __init__(
        self,
        model: Model,
        model_name: str,
        instance_id: str,
        batch_size: int,
        stats: StatsTally | None = None,
        retries: RetryPolicy | None = None,
        version: str | None = None,
    ) -> None:
        """``retries``: which failures run again and when; by default the model's
        (``retry_on``, ``max_retries``) with the default backoff. ``version``: the version the
        worker serves (``MODEL_VERSION``), by default the model's."""
        self.model = model
        self.model_name = model_name
        self.version = version or model.version
        self.instance_id = instance_id
        self.batching = batch_size > 1 and model.implements_batching()
        self.stats = stats
        self.retries = retries or policy_for(model)
        self.redis: aioredis.Redis | None = None
        """Where the model's progress reports go (``worker_base.progress``); set once connected."""
        self.streams: StreamRun | None = None
        """What runs streamed tasks (their pieces go to Redis); set once connected. Without it
        a streamed task fails (``MODEL_ERROR``)."""
        self._expected = model.get_response_format().full_name

    def result_for(self, task: task_pb2.Task, redelivered: bool = False) -> task_pb2.TaskResult:
        """An empty result for ``task``, naming this worker, model version and attempt (with
        the errors of the task's earlier attempts)."""
        return task_pb2.TaskResult(
            task_id=task.task_id,
            model=self.model_name,
            version=self.version,
            worker_id=self.instance_id,
            redelivered=redelivered,
            attempt=task.attempt or 1,
            failed_attempts=task.failed_attempts,
        )

    async def execute(self, task: task_pb2.Task, redelivered: bool = False) -> task_pb2.TaskResult:
        """Run the model on one task and return its result."""
        return (await self.execute_batch([task], [redelivered]))[0]

    async def execute_batch(
        self, tasks: Sequence[task_pb2.Task], redelivered: Sequence[bool]
    ) -> list[task_pb2.TaskResult]:
        """Run the model on ``tasks`` (one call when batching) and return one result each (for
        a task to be retried, its attempt's error: ``attempt_batch`` tells them apart)."""
        results, _ = await self.attempt_batch(tasks, redelivered)
        return results

    async def attempt_batch(
        self, tasks: Sequence[task_pb2.Task], redelivered: Sequence[bool]
    ) -> Attempts:
        """Run the model on ``tasks`` (one call when batching): each task's result, and the
        retries of those that failed retryably with a retry left."""
        results = [self.result_for(t, r) for t, r in zip(tasks, redelivered, strict=True)]
        now = now_ms()
        runnable: list[int] = []
        for i, task in enumerate(tasks):
            if task.deadline_unix_ms and now > task.deadline_unix_ms:
                results[i].error.code = task_pb2.TaskError.DEADLINE_EXCEEDED
                results[i].error.message = "the deadline passed before a worker took the task"
            else:
                runnable.append(i)
        started_ns = compute_ns = 0
        transient: list[tuple[int, Exception]] | None = None
        if runnable:
            started_ns = time.time_ns()
            clock = time.perf_counter_ns()
            outcomes = await self._run([tasks[i] for i in runnable])
            compute_ns = time.perf_counter_ns() - clock
            for i, outcome in zip(runnable, outcomes, strict=True):
                results[i].started_unix_ms = started_ns // 1_000_000
                error = self._record(tasks[i], results[i], outcome)
                if error is not None:  # retryable: decided below, with the whole batch
                    if transient is None:
                        transient = []
                    transient.append((i, error))
        finished_ns = time.time_ns()
        for result in results:
            result.finished_unix_ms = finished_ns // 1_000_000
        retries = self._retries(tasks, results, transient) if transient else _NO_RETRIES
        if self.stats is not None:
            counted, ran = results, runnable
            if retries:
                tasks, counted, ran = _answered(tasks, results, runnable, retries)
            self.stats.record(
                tasks,
                counted,
                ran,
                started_ns=started_ns,
                compute_ns=compute_ns,
                finished_ns=finished_ns,
                one_call=self.batching,
            )
        return results, retries

    async def _run(self, tasks: list[task_pb2.Task]) -> Sequence[Message | Exception]:
        """The model's outcome for each task; its progress reports go to the tasks it serves.
        A streamed task runs on its own (the runner gives it alone)."""
        if self.batching and not any(task.stream for task in tasks):
            try:
                with progress.serving(self.redis, tasks):
                    outcomes = await self.model.process_batch([t.payload for t in tasks])
            except Exception as e:
                return [e] * len(tasks)
            if len(outcomes) != len(tasks):
                error = RuntimeError(
                    f"process_batch returned {len(outcomes)} outcomes for {len(tasks)} requests"
                )
                return [error] * len(tasks)
            return outcomes
        outcomes_one: list[Message | Exception] = []
        for task in tasks:
            try:
                if task.stream:
                    with progress.serving(self.redis, (task,)):
                        outcomes_one.append(await self._stream(task))
                elif task.events_key:  # followed: it may report progress
                    with progress.serving(self.redis, (task,)):
                        outcomes_one.append(await self.model.process_request(task.payload))
                else:
                    outcomes_one.append(await self.model.process_request(task.payload))
            except ChunkWriteFailed:
                raise
            except Exception as e:
                outcomes_one.append(e)
        return outcomes_one

    async def _stream(self, task: task_pb2.Task) -> Message:
        if self.streams is None:
            raise RuntimeError("this worker cannot stream: it is not connected to Redis")
        return await self.streams.run(task)

    def _retries(
        self,
        tasks: Sequence[task_pb2.Task],
        results: Sequence[task_pb2.TaskResult],
        transient: Sequence[tuple[int, Exception]],
    ) -> dict[int, Retry]:
        """The retries of the tasks at ``transient``'s indexes, which failed retryably; a task
        the policy does not retry keeps its error as its final result."""
        retries: dict[int, Retry] = {}
        now = now_ms()
        for i, error in transient:
            task = tasks[i]
            retry = self.retries.retry(task, results[i].error, now)
            with logs.bound(task.request_id, task.task_id, self.model_name, task.version):
                if retry is None:
                    logger.error(
                        "model %s failed on task %s, attempt %d, not retried (no retry left, or "
                        "its deadline comes first): %s: %s",
                        self.model_name,
                        task.task_id,
                        task.attempt or 1,
                        type(error).__name__,
                        error,
                        exc_info=error,
                    )
                    continue
                logger.warning(
                    "model %s failed on task %s, attempt %d: %s: %s; retrying in %d ms",
                    self.model_name,
                    task.task_id,
                    task.attempt or 1,
                    type(error).__name__,
                    error,
                    retry.delay_ms,
                )
            retries[i] = retry
        return retries

    def _record(
        self, task: task_pb2.Task, result: task_pb2.TaskResult, outcome: Message | Exception
    ) -> Exception | None:
        """Put ``outcome`` in ``result``; returns a retryable exception (not logged yet: its
        retry is decided with the batch's), else None."""
        if isinstance(outcome, StreamStopped | StreamDeadline | StreamTooLong):
            result.error.code = _STREAM_ENDS[type(outcome)]
            result.error.message = outcome.message
        elif isinstance(outcome, InvalidRequest):
            result.error.code = task_pb2.TaskError.INVALID_ARGUMENT
            result.error.message = outcome.message
            result.error.field = outcome.field
        elif isinstance(outcome, DecodeError):
            result.error.code = task_pb2.TaskError.BAD_TASK
            result.error.message = f"cannot decode the request payload: {outcome}"
        elif isinstance(outcome, Exception):
            result.error.code = task_pb2.TaskError.MODEL_ERROR
            result.error.message = f"{type(outcome).__name__}: {outcome}"
            if self.retries.transient(outcome):
                return outcome
            with logs.bound(task.request_id, task.task_id, self.model_name, task.version):
                logger.error(
                    "model %s failed on task %s: %s: %s",
                    self.model_name,
                    task.task_id,
                    type(outcome).__name__,
                    outcome,
                    exc_info=outcome,
                )
        elif outcome.DESCRIPTOR.full_name != self._expected:
            result.error.code = task_pb2.TaskError.MODEL_ERROR
            result.error.message = (
                f"model returned {outcome.DESCRIPTOR.full_name}, expected {self._expected}"
            )
        else:
            result.response = outcome.SerializeToString()
        return None


class TaskRunner:
    """What every runner does: take a batch, run what is not answered yet, hand the results over
    (and the retries, to ``retries``).

    ``running_seconds``: how long an asynchronous task is marked running once claimed (its
    cancellation is refused meanwhile); longer than any run and the shutdown grace.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        executor: Executor,
        settler: Settler,
        results: ResultBackend,
        metrics: WorkerMetrics,
        batch: tuple[int, float],
        running_seconds: int,
        retries: RetryScheduler,
    ) -> None:
        self.scheduler = scheduler
        self.executor = executor
        self.settler = settler
        self.results = results
        self.metrics = metrics
        self.retries = retries
        self.batch_size, self.batch_delay = batch
        self.running_seconds = running_seconds

    async def serve(self) -> None:
        """Run batches until cancelled; a batch that fails unexpectedly is returned to its queue."""
        while True:
            await self.run(await self.scheduler.take(self.batch_size, self.batch_delay))

    async def run(self, batch: list[Delivery]) -> None:
        """Run one batch and settle each of its deliveries; a batch that fails unexpectedly is
        returned to its queue."""
        try:
            await self._run(batch)
        except Exception:
            logger.exception("a batch of %d tasks failed unexpectedly; requeueing", len(batch))
            await self.settler.release(batch, requeue=True)

    async def run_now(self, delivery: Delivery) -> bool:
        """Run ``delivery`` in the caller's task, on a turn the scheduler lends
        (``Scheduler.lend``); False, with nothing done, when it lends none (queue it then).

        Cancelled meanwhile (its channel closed), the delivery is settled as returned to its
        queue: the broker delivers it again."""
        if not self.scheduler.lend(self.batch_size > 1):
            return False
        try:
            await self.run([delivery])
        except asyncio.CancelledError:
            await self.settler.release([delivery], requeue=True)
            raise
        finally:
            await self.scheduler.give_back()
        return True

    async def _run(self, batch: list[Delivery]) -> None:
        runnable: list[Delivery] = []
        streamed: list[Delivery] = []
        answered: list[Delivery] = []
        for delivery in batch:
            if await self._already_answered(delivery):
                answered.append(delivery)
            else:
                (streamed if delivery.task.stream else runnable).append(delivery)
        if answered:
            await self.settler.release(answered, requeue=False)
        if runnable:
            await self._attempt(runnable)
        for delivery in streamed:  # each alone, after the others are handed over
            try:
                await self._attempt([delivery])
            except ChunkWriteFailed as e:
                logger.warning(
                    "task %s: its stream could not be written (%s); returning it to its queue",
                    delivery.task.task_id,
                    e.__cause__ or e,
                )
                await asyncio.sleep(REDIS_RETRY_DELAY)
                await self.settler.release([delivery], requeue=True)

    async def _attempt(self, runnable: list[Delivery]) -> None:
        """Run ``runnable`` (one model call when batching), hand over results and retries."""
        tasks = [d.task for d in runnable]
        redelivered = [bool(d.message.redelivered) for d in runnable]
        if tracing.tracer is not None and any(d.span is not None for d in runnable):
            results, retries = await self._traced_attempt(runnable, tasks, redelivered)
        else:
            results, retries = await self.executor.attempt_batch(tasks, redelivered)
        if retries:
            runnable, tasks, results = self._retry(runnable, results, retries)
            if not runnable:
                return
        items = list(zip(runnable, results, strict=True))
        spans = [d.span for d in runnable]  # settling ends each task's span and clears it
        if not self.scheduler and self.settler.commits.idle:
            # Nothing queued for this runner to take next: it stores its results itself.
            await self.settler.commits.store_now(items)
        else:
            self.settler.commit(items)
            # The results leave first: the flush the commit started sends them in this pause,
            # and the bookkeeping below runs while they are on the wire.
            await asyncio.sleep(0)
        traces = None
        if tracing.tracer is not None:
            traces = [tracing.trace_id_of(span) if span else "" for span in spans]
        self.metrics.observe(tasks, results, traces)
        if logger.isEnabledFor(logging.DEBUG):
            for task, span, result in zip(tasks, spans, results, strict=True):
                with logs.bound(task.request_id, task.task_id, task.model, task.version):
                    if span is None:
                        logger.debug("task answered: %s", _outcome(result))
                        continue
                    with tracing.current(span):
                        logger.debug("task answered: %s", _outcome(result))

    async def _traced_attempt(
        self, runnable: list[Delivery], tasks: list[task_pb2.Task], redelivered: list[bool]
    ) -> Attempts:
        """``attempt_batch`` in the model call's span; each outcome noted on its task's span."""
        spans = [d.span for d in runnable if d.span is not None]
        executor = self.executor
        with model_call(spans, executor.model_name, executor.batching, len(tasks)):
            results, retries = await executor.attempt_batch(tasks, redelivered)
        for i, (delivery, result) in enumerate(zip(runnable, results, strict=True)):
            if delivery.span is not None:
                outcome(delivery.span, result, retried=i in retries)
        return results, retries

    def _retry(
        self,
        runnable: list[Delivery],
        results: list[task_pb2.TaskResult],
        retries: Mapping[int, Retry],
    ) -> tuple[list[Delivery], list[task_pb2.Task], list[task_pb2.TaskResult]]:
        """Hand the retried deliveries to ``retries``; returns the answered ones, their tasks
        and their results."""
        self.retries.schedule([(runnable[i], retry) for i, retry in retries.items()])
        answered = [i for i in range(len(runnable)) if i not in retries]
        return (
            [runnable[i] for i in answered],
            [runnable[i].task for i in answered],
            [results[i] for i in answered],
        )

    async def _already_answered(self, delivery: Delivery) -> bool:
        """True when the task has a result already and must not run (again).

        An asynchronous task is claimed first (it may have been cancelled while queued); a
        synchronous one is checked only when redelivered, and its stored result re-announced.
        """
        task, results = delivery.task, self.results
        call: Callable[[], Awaitable[bool]]
        if not task.reply_channel:

            async def call() -> bool:
                return not await results.claim(
                    task, self.running_seconds, self.executor.instance_id
                )

        elif delivery.message.redelivered:

            async def call() -> bool:
                return await results.republish(task)

        else:
            return False
        return await until_redis_answers(call)


_STREAM_ENDS: Mapping[type[Exception], task_pb2.TaskError.Code] = MappingProxyType(
    {
        StreamStopped: task_pb2.TaskError.CANCELLED,
        StreamDeadline: task_pb2.TaskError.DEADLINE_EXCEEDED,
        StreamTooLong: task_pb2.TaskError.MODEL_ERROR,
    }
)
"""The error code of a stream the worker stopped, by why."""


def _answered(
    tasks: Sequence[task_pb2.Task],
    results: Sequence[task_pb2.TaskResult],
    ran: Sequence[int],
    retries: Mapping[int, Retry],
) -> tuple[list[task_pb2.Task], list[task_pb2.TaskResult], list[int]]:
    """The tasks of a batch that are answered (not retried), their results, and the indexes
    among them of those that ran."""
    answered = [i for i in range(len(tasks)) if i not in retries]
    ran_set = set(ran)
    return (
        [tasks[i] for i in answered],
        [results[i] for i in answered],
        [j for j, i in enumerate(answered) if i in ran_set],
    )


def _outcome(result: task_pb2.TaskResult) -> str:
    if not result.HasField("error"):
        return "ok"
    return str(task_pb2.TaskError.Code.Name(result.error.code))
