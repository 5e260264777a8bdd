"""A traced task's spans in the worker (``conveyor.tracing``; nothing when tracing is off or the
task carries no ``trace_context``).

Each traced delivery gets, as children of the context the gateway put in the task:

- ``queue <queue>``: from the task's publish (``Task.published_unix_nano``; else its creation)
  to its delivery to this worker;
- ``process <queue>`` (a consumer span): from the delivery until the delivery is settled, so it
  holds the model call and the result's store (a retried attempt, or a task whose result is an
  error, has the status ERROR);
- ``store result`` (its child): from the result's hand-over to the settling flush until Redis
  stored and announced it (``worker_base.settle``);
- ``send <delay queue>`` (its child, a producer span): a retry published to the delay lane.

The model call is one span (``process_request <model>``, or ``process_batch <model>`` for a
batching model) under the first traced task's ``process`` span, linked to the ``process`` span of
every traced task it served; it is the current span while the model runs, so the model's log
lines carry its trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from conveyor import tracing
from proto import task_pb2

__all__ = ["delivered", "model_call", "retry_publish", "settled", "stored", "storing"]


def delivered(
    task: task_pb2.Task, queue: str, model: str, version: str, received_ns: int
) -> tracing.Span | None:
    """End ``task``'s queue span at ``received_ns`` and return its process span (started
    then); None when it is not traced."""
    tracer = tracing.tracer
    if tracer is None or not task.trace_context:
        return None
    parent = tracing.extract_from(task.trace_context)
    if parent is None:
        return None
    published = task.published_unix_nano or task.created_unix_ms * 1_000_000
    base: dict[str, str | int] = {
        tracing.MESSAGING_SYSTEM: "rabbitmq",
        tracing.MESSAGING_DESTINATION: queue,
        tracing.MESSAGING_MESSAGE_ID: task.task_id,
        tracing.TASK_ID: task.task_id,
        tracing.MODEL: model,
        tracing.VERSION: version,
    }
    waited = tracer.start_span(
        f"queue {queue}", context=parent, attributes=base, start_time=min(published, received_ns)
    )
    waited.end(end_time=received_ns)
    attributes: dict[str, str | int] = {
        **base,
        tracing.MESSAGING_OPERATION_TYPE: "process",
        tracing.MESSAGING_OPERATION_NAME: "consume",
        tracing.ATTEMPT: task.attempt or 1,
    }
    if task.request_id:
        attributes[tracing.REQUEST_ID] = task.request_id
    return tracer.start_span(
        f"process {queue}",
        context=parent,
        kind=tracing.SpanKind.CONSUMER,
        attributes=attributes,
        start_time=received_ns,
    )


@contextmanager
def model_call(
    spans: Sequence[tracing.Span], model: str, batching: bool, size: int
) -> Iterator[tracing.Span | None]:
    """The model's call on a batch of ``size`` tasks, ``spans`` the process spans of its traced
    ones (none: not traced), as the current span (see the module doc)."""
    tracer = tracing.tracer
    if tracer is None or not spans:
        yield None
        return
    call = "process_batch" if batching else "process_request"
    with tracer.start_as_current_span(
        f"{call} {model}",
        context=tracing.context_of(spans[0]),
        links=[tracing.link_to(span) for span in spans] if batching else None,
        attributes={tracing.MODEL: model, tracing.MESSAGING_BATCH_COUNT: size},
    ) as span:
        yield span


def outcome(span: tracing.Span, result: task_pb2.TaskResult, retried: bool = False) -> None:
    """Note a task's outcome on its process span: an error result (or a retried attempt)
    marks it failed."""
    if result.HasField("error"):
        code = task_pb2.TaskError.Code.Name(result.error.code)
        message = ("retrying: " if retried else "") + result.error.message
        tracing.fail(span, message, code)


def storing(span: tracing.Span) -> tracing.Span | None:
    """The store span of a result handed over now, under its task's process span."""
    tracer = tracing.tracer
    if tracer is None:
        return None
    return tracer.start_span(
        "store result",
        context=tracing.context_of(span),
        kind=tracing.SpanKind.CLIENT,
        attributes={tracing.DB_SYSTEM: "redis", tracing.DB_OPERATION: "EVALSHA store"},
    )


def stored(span: tracing.Span, ok: bool) -> None:
    """End a store span (``ok``: the result is stored and announced)."""
    if not ok:
        tracing.fail(span, "the result could not be stored; the task goes back to its queue")
    span.end()


def settled(span: tracing.Span, requeued: bool) -> None:
    """End a process span: its delivery is settled (``requeued``: returned to its queue)."""
    if requeued:
        span.set_attribute("conveyor.task.requeued", True)
    span.end()


@contextmanager
def retry_publish(
    span: tracing.Span, task: task_pb2.Task, queue: str, delay_ms: int
) -> Iterator[None]:
    """A retry's publish to the delay lane, under the failed attempt's process span; stamps
    the retry's publish time (where its next queue span starts)."""
    tracer = tracing.tracer
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(
        f"send {queue}",
        context=tracing.context_of(span),
        kind=tracing.SpanKind.PRODUCER,
        attributes=tracing.publish_attributes(
            queue,
            task.task_id,
            {tracing.ATTEMPT: task.attempt, "conveyor.retry.delay_ms": delay_ms},
        ),
    ):
        task.published_unix_nano = time.time_ns()
        yield
