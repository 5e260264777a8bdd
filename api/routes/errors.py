"""Every error the gateway answers is JSON: ``{"error": {code, message, model, field}}``."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.exceptions import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    RegistryUnavailable,
    ResultTimeout,
    TaskFailed,
    TaskNotFound,
)

_STATUS: dict[type[GatewayError], tuple[int, str]] = {
    ModelNotFound: (404, "model_not_found"),
    TaskNotFound: (404, "task_not_found"),
    ModelUnavailable: (503, "model_unavailable"),
    RegistryUnavailable: (503, "registry_unavailable"),
    InvalidRequest: (422, "invalid_request"),
    ResultTimeout: (504, "timeout"),
}

_TASK_FAILED_STATUS = {"INVALID_ARGUMENT": 422, "DEADLINE_EXCEEDED": 504}


def error_body(
    code: str,
    message: str,
    model: str | None = None,
    field: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the JSON error body."""
    return {"error": {"code": code, "message": message, "model": model, "field": field, **extra}}


def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    extra: dict[str, Any] = {}
    if isinstance(exc, TaskFailed):
        status, code = _TASK_FAILED_STATUS.get(exc.code, 500), exc.code.lower()
        extra["task_id"] = exc.task_id
    else:
        status, code = _STATUS.get(type(exc), (500, "internal"))
    if isinstance(exc, ResultTimeout):
        extra["task_id"] = exc.task_id
        extra["status_url"] = f"/tasks/{exc.task_id}"
    body = error_body(code, exc.message, exc.model, exc.field, **extra)
    return JSONResponse(status_code=status, content=body)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ())]
    field = location[-1] if location else None
    message = f"{'.'.join(location)}: {first.get('msg', 'invalid')}"
    model = request.path_params.get("model")
    return JSONResponse(
        status_code=422, content=error_body("invalid_request", message, model, field)
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
    return JSONResponse(
        status_code=exc.status_code,
        content=error_body(code, str(exc.detail)),
        headers=exc.headers,
    )


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
