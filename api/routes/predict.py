"""``POST /predict/{model}``: run a model on a JSON request, synchronously or not."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.codec import parse_request
from api.deps import CatalogDep, DispatcherDep, SettingsDep
from api.exceptions import InvalidRequest, ModelUnavailable
from api.routes.results import response_json

router = APIRouter(tags=["predict"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown model"},
    422: {"description": "Body not JSON, or not fitting the model's request message"},
    503: {"description": "No live worker for the model, or registry unreachable"},
    504: {"description": "No result before the timeout"},
}

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"data": "example"},
            }
        },
        "description": "The model's request message in the protobuf JSON mapping "
        "(see GET /models/{model} for its fields and an example).",
    }
}


@router.post(
    "/predict/{model}",
    responses={202: {"description": "Accepted (mode=async)"}, **_ERRORS},
    openapi_extra=_BODY,
)
async def predict(
    model: str,
    request: Request,
    catalog: CatalogDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    mode: Literal["sync", "async"] = "sync",
    wait_seconds: Annotated[
        float | None,
        Query(alias="timeout", gt=0, description="Seconds to wait for the result (sync mode)."),
    ] = None,
) -> JSONResponse:
    """Run ``model`` on the JSON body; answer its response, or 202 + task id with mode=async."""
    info = await catalog.get(model)
    payload = parse_request(await request.body(), info.request_class, model)
    if not info.alive:
        raise ModelUnavailable(f"model {model!r} has no live worker", model=model)
    if mode == "async":
        task_id = await dispatcher.submit(info, payload, settings.async_deadline, wait=False)
        body = {
            "task_id": task_id,
            "model": model,
            "status": "pending",
            "status_url": str(request.url_for("get_task", task_id=task_id).path),
        }
        return JSONResponse(status_code=202, content=body)
    wait = wait_seconds if wait_seconds is not None else settings.default_timeout
    if wait > settings.max_timeout:
        raise InvalidRequest(
            f"timeout must be at most {settings.max_timeout:g} s", model=model, field="timeout"
        )
    task_id = await dispatcher.submit(info, payload, wait, wait=True)
    result = await dispatcher.wait_result(task_id, model, wait)
    return JSONResponse(content=response_json(result, info))
