"""``POST /predict/{model}``: run a model on a JSON request, synchronously or not."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response

from api.catalog import check_name
from api.codec import parse_request
from api.deps import ArrivalDep, CatalogDep, DispatcherDep, RequestIdDep, SettingsDep
from api.exceptions import (
    InvalidRequest,
    ModelUnavailable,
    ResultTimeout,
    UnsupportedMediaType,
)
from api.routes.results import response_json
from api.schemas import TaskAccepted
from conveyor.protocol import MAX_PRIORITY, MIN_PRIORITY
from conveyor.web import ErrorBody

router = APIRouter(tags=["predict"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key (when API_KEYS is set)"},
    404: {"model": ErrorBody, "description": "Unknown model or version"},
    413: {"model": ErrorBody, "description": "Body larger than MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "Body declared as something other than JSON"},
    422: {"model": ErrorBody, "description": "Body, name or parameter not acceptable"},
    429: {"model": ErrorBody, "description": "The model's queue or the gateway is full"},
    500: {"model": ErrorBody, "description": "The model failed on this request"},
    502: {"model": ErrorBody, "description": "The worker's response could not be read"},
    503: {"model": ErrorBody, "description": "No live worker, or a dependency is unreachable"},
    504: {"model": ErrorBody, "description": "No result before the timeout"},
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


def _check_json(request: Request, model: str) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"the body must be JSON (Content-Type: application/json), not {media!r}", model=model
        )


@router.post(
    "/predict/{model}",
    status_code=200,
    responses={
        200: {"description": "The model's response message as JSON"},
        202: {"model": TaskAccepted, "description": "Accepted (mode=async)"},
        **_ERRORS,
    },
    openapi_extra=_BODY,
)
async def predict(
    model: str,
    request: Request,
    catalog: CatalogDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    arrival: ArrivalDep,
    request_id: RequestIdDep,
    mode: Literal["sync", "async"] = "sync",
    wait_seconds: Annotated[
        float | None,
        Query(
            alias="timeout",
            description="Seconds to wait for the result (sync mode), counted from arrival; "
            "between MIN_TIMEOUT and MAX_TIMEOUT.",
        ),
    ] = None,
    version: Annotated[
        str | None, Query(description="The model version (default: the highest live one).")
    ] = None,
    priority: Annotated[
        int, Query(ge=MIN_PRIORITY, le=MAX_PRIORITY, description="0-9, higher first.")
    ] = 0,
) -> Response:
    """Run ``model`` on the JSON body; answer its response, or 202 + task id with mode=async."""
    _check_json(request, model)
    wait = wait_seconds if wait_seconds is not None else settings.default_timeout
    if not settings.min_timeout <= wait <= settings.max_timeout:
        raise InvalidRequest(
            f"timeout must be between {settings.min_timeout:g} and {settings.max_timeout:g} s",
            model=model,
            field="timeout",
        )
    check_name(model, version)
    info = await catalog.get(model, version)
    payload = parse_request(
        await request.body(), info.request_class, model, settings.max_json_depth
    )
    if not info.alive:
        raise ModelUnavailable(
            f"model {model!r} version {info.version!r} has no live worker", model=model
        )
    if mode == "async":
        task_id = await dispatcher.submit(
            info,
            payload,
            deadline=settings.async_deadline,
            priority=priority,
            request_id=request_id,
        )
        accepted = TaskAccepted(
            task_id=task_id,
            model=model,
            version=info.version,
            status="pending",
            status_url=str(request.url_for("get_task", task_id=task_id).path),
        )
        return Response(
            orjson.dumps(accepted.model_dump()), status_code=202, media_type="application/json"
        )
    remaining = wait - (time.monotonic() - arrival)
    if remaining <= 0:
        raise ResultTimeout(
            f"the request spent its {wait:g} s timeout waiting in the gateway",
            model=model,
            task_id=None,
        )
    result = await dispatcher.run(
        info, payload, seconds=remaining, priority=priority, request_id=request_id
    )
    return Response(orjson.dumps(response_json(result, info)), media_type="application/json")
