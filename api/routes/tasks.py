"""``GET /tasks/{task_id}`` (status) and ``DELETE /tasks/{task_id}`` (cancel a queued task)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api.deps import CatalogDep, DispatcherDep
from api.schemas import TaskState
from api.task_state import task_state
from conveyor.web import ErrorBody

router = APIRouter(tags=["tasks"])

TaskId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key (when API_KEYS is set)"},
    404: {"model": ErrorBody, "description": "Unknown or expired task"},
    422: {"model": ErrorBody, "description": "Not a task id"},
    503: {"model": ErrorBody, "description": "Redis is unreachable"},
}


@router.get(
    "/tasks/{task_id}",
    name="get_task",
    responses=_ERRORS,
    response_model_exclude_none=True,
)
async def get_task(task_id: TaskId, catalog: CatalogDep, dispatcher: DispatcherDep) -> TaskState:
    """Return ``pending``, ``done`` with the result, ``failed`` with the error, or ``cancelled``."""
    return await task_state(await dispatcher.status(task_id), catalog)


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
    return await task_state(await dispatcher.cancel(task_id), catalog)
