"""``GET /tasks/{task_id}``: the status of a submitted task."""

from typing import Any

from fastapi import APIRouter

from api.deps import CatalogDep, DispatcherDep
from api.exceptions import TaskFailed
from api.routes.results import response_json

router = APIRouter(tags=["tasks"])


@router.get("/tasks/{task_id}", name="get_task", responses={404: {"description": "Unknown"}})
async def get_task(task_id: str, catalog: CatalogDep, dispatcher: DispatcherDep) -> dict[str, Any]:
    """Return ``pending``, ``done`` with the result, or ``failed`` with the error."""
    status = await dispatcher.status(task_id)
    body: dict[str, Any] = {"task_id": task_id, "model": status.model}
    if status.result is None:
        return {**body, "status": "pending"}
    info = await catalog.get(status.model)
    try:
        return {**body, "status": "done", "result": response_json(status.result, info)}
    except TaskFailed as e:
        error = {"code": e.code, "message": e.message, "field": e.field}
        return {**body, "status": "failed", "error": error}
