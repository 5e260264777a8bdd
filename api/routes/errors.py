"""How the gateway answers its errors: the shared JSON contract, with ``model`` and ``field``.

``{"error": {"code", "message", "model", "field", ...}}`` plus ``task_id`` / ``status_url`` where
a task exists, and ``Retry-After`` on a 429 or 503. This is the only place that maps the
gateway's domain errors to HTTP statuses.
"""

from typing import Any

from fastapi import FastAPI, Request

from api.exceptions import (
    GatewayError,
    InvalidRequest,
    InvalidResult,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    PayloadTooLarge,
    ResultTimeout,
    ServiceUnavailable,
    TaskConflict,
    TaskFailed,
    TaskNotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from conveyor.errors import ConveyorError
from conveyor.protocol import MODEL_NAME_PATTERN, VERSION_PATTERN
from conveyor.web import install_error_handlers

_STATUS: dict[type[GatewayError], int] = {
    Unauthorized: 401,
    ModelNotFound: 404,
    TaskNotFound: 404,
    TaskConflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    InvalidRequest: 422,
    Overloaded: 429,
    InvalidResult: 502,
    ModelUnavailable: 503,
    ResultTimeout: 504,
}

_TASK_FAILED_STATUS = {
    "invalid_argument": 422,
    "deadline_exceeded": 504,
    "cancelled": 409,
}


def status_of(exc: ConveyorError) -> tuple[int, dict[str, Any]]:
    """The HTTP status of a domain error, and the error keys (and headers) it adds."""
    if not isinstance(exc, GatewayError):
        return 500, {}
    extra: dict[str, Any] = {"model": exc.model, "field": exc.field}
    if isinstance(exc, TaskFailed):
        extra["task_id"] = exc.task_id
        return _TASK_FAILED_STATUS.get(exc.code, 500), extra
    if isinstance(exc, ResultTimeout) and exc.task_id is not None:
        extra["task_id"] = exc.task_id
        extra["status_url"] = f"/tasks/{exc.task_id}"
    if isinstance(exc, TaskConflict):
        extra["task_id"] = exc.task_id
        extra["status"] = exc.status
    if isinstance(exc, ServiceUnavailable):
        extra["dependency"] = exc.dependency
        extra["headers"] = {"Retry-After": str(exc.retry_after)}
        return 503, extra
    if isinstance(exc, Overloaded | ModelUnavailable):
        extra["headers"] = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, Unauthorized):
        extra["headers"] = {"WWW-Authenticate": "Bearer"}
    return _STATUS.get(type(exc), 500), extra


def context_of(request: Request) -> dict[str, Any]:
    """Every gateway error names the model of the path (if any) and a field (if known)."""
    return {"model": request.path_params.get("model"), "field": None}


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    install_error_handlers(
        app,
        status_of,
        context_of,
        other_contract=("/v2",),
        path_patterns={
            "model": MODEL_NAME_PATTERN.pattern,
            "version": VERSION_PATTERN.pattern,
        },
    )
