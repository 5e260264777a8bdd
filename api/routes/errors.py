"""How the gateway answers its errors: the shared JSON contract, with ``model`` and ``field``.

``{"error": {"code", "message", "model", "field", ...}}`` plus ``task_id`` / ``status_url`` where
a task exists. This is the only place that maps the gateway's domain errors to HTTP statuses.
"""

from typing import Any

from fastapi import FastAPI, Request

from api.exceptions import (
    GatewayError,
    InvalidRequest,
    InvalidResult,
    ModelNotFound,
    ModelUnavailable,
    RegistryUnavailable,
    ResultTimeout,
    TaskFailed,
    TaskNotFound,
)
from conveyor.errors import ConveyorError
from conveyor.web import install_error_handlers

_STATUS: dict[type[GatewayError], int] = {
    ModelNotFound: 404,
    TaskNotFound: 404,
    ModelUnavailable: 503,
    RegistryUnavailable: 503,
    InvalidRequest: 422,
    InvalidResult: 502,
    ResultTimeout: 504,
}

_TASK_FAILED_STATUS = {"invalid_argument": 422, "deadline_exceeded": 504}


def status_of(exc: ConveyorError) -> tuple[int, dict[str, Any]]:
    """The HTTP status of a domain error, and the error keys it adds."""
    if not isinstance(exc, GatewayError):
        return 500, {}
    extra: dict[str, Any] = {"model": exc.model, "field": exc.field}
    if isinstance(exc, TaskFailed):
        extra["task_id"] = exc.task_id
        return _TASK_FAILED_STATUS.get(exc.code, 500), extra
    if isinstance(exc, ResultTimeout):
        extra["task_id"] = exc.task_id
        extra["status_url"] = f"/tasks/{exc.task_id}"
    return _STATUS.get(type(exc), 500), extra


def context_of(request: Request) -> dict[str, Any]:
    """Every gateway error names the model of the path (if any) and a field (if known)."""
    return {"model": request.path_params.get("model"), "field": None}


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    install_error_handlers(app, status_of, context_of)
