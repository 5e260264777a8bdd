"""``GET /tasks/{task_id}`` (status) and ``DELETE /tasks/{task_id}`` (cancel a queued task)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api.codec import response_json
from api.deps import CatalogDep, DispatcherDep
from api.dispatch import TaskStatus
from api.exceptions import ModelNotFound, TaskFailed
from api.schemas import TaskError, TaskState
from conveyor.web import ErrorBody
from proto import task_pb2

router = APIRouter(tags=["tasks"])

TaskId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key (when API_KEYS is set)"},
    404: {"model": ErrorBody, "description": "Unknown or expired task"},
    422: {"model": ErrorBody, "description": "Not a task id"},
    503: {"model": ErrorBody, "description": "Redis is unreachable"},
}


async def _state(status: TaskStatus, catalog: CatalogDep) -> TaskState:
    base = TaskState(
        task_id=status.task_id,
        model=status.model,
        version=status.version or None,
        status="pending",
    )
    result = status.result
    if result is None:
        return base
    if result.WhichOneof("outcome") == "error":
        error = result.error
        code = task_pb2.TaskError.Code.Name(error.code).lower()
        failure = TaskError(code=code, message=error.message, field=error.field or None)
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


@router.get(
    "/tasks/{task_id}",
    name="get_task",
    responses=_ERRORS,
    response_model_exclude_none=True,
)
async def get_task(task_id: TaskId, catalog: CatalogDep, dispatcher: DispatcherDep) -> TaskState:
    """Return ``pending``, ``done`` with the result, ``failed`` with the error, or ``cancelled``."""
    return await _state(await dispatcher.status(task_id), catalog)


@router.delete(
    "/tasks/{task_id}",
    responses={
        **_ERRORS,
        409: {"model": ErrorBody, "description": "The task finished or is running"},
    },
    response_model_exclude_none=True,
)
async def cancel_task(task_id: TaskId, catalog: CatalogDep, dispatcher: DispatcherDep) -> TaskState:
    """Cancel a task that is still queued: a worker that receives it later skips it."""
    return await _state(await dispatcher.cancel(task_id), catalog)
