"""How a task is shown: the JSON of ``GET /tasks/{id}``, which callbacks and the event stream's
final event carry too."""

from __future__ import annotations

from api.catalog import ModelCatalog
from api.codec import response_json
from api.dispatch import TaskStatus
from api.exceptions import ModelNotFound, TaskFailed
from api.following import Pending
from api.schemas import TaskError, TaskState
from proto import task_pb2

__all__ = ["task_state"]


def _error(error: task_pb2.TaskError) -> TaskError:
    code = task_pb2.TaskError.Code.Name(error.code).lower()
    return TaskError(code=code, message=error.message, field=error.field or None)


async def task_state(
    status: TaskStatus, catalog: ModelCatalog, pending: Pending | None = None
) -> TaskState:
    """The task as the HTTP API shows it (``GET /tasks/{id}``, callbacks, events): pending (with
    where it stands, from ``pending``), done with the result rendered as JSON, failed with the
    error, or cancelled; a retried task's earlier errors; its callback's state."""
    base = TaskState(
        task_id=status.task_id,
        model=status.model,
        version=status.version or None,
        status="pending",
    )
    if pending is not None:
        base.callback = pending.callback
    result = status.result
    if result is None:
        if pending is not None:
            base.stage = pending.stage  # type: ignore[assignment]
            base.position = pending.position
            base.estimated_start_unix_ms = pending.estimated_start_unix_ms
            base.progress = pending.progress
            base.attempt = pending.attempt if pending.attempt and pending.attempt > 1 else None
        return base
    if result.failed_attempts:
        base.attempt = result.attempt or len(result.failed_attempts) + 1
        base.attempts = [_error(error) for error in result.failed_attempts]
    if result.WhichOneof("outcome") == "error":
        error = result.error
        failure = _error(error)
        if error.code == task_pb2.TaskError.CANCELLED:
            return base.model_copy(update={"status": "cancelled", "error": failure})
        return base.model_copy(update={"status": "failed", "error": failure})
    try:
        info = await catalog.get(status.model, status.version or None)
    except ModelNotFound:
        failure = TaskError(
            code="model_not_found",
            message=f"the task finished, but model {status.model!r} is no longer registered",
        )
        return base.model_copy(update={"status": "failed", "error": failure})
    try:
        return base.model_copy(update={"status": "done", "result": response_json(result, info)})
    except TaskFailed as e:
        failure = TaskError(code=e.code, message=e.message, field=e.field)
        return base.model_copy(update={"status": "failed", "error": failure})
