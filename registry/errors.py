"""How the registry answers its errors: the shared JSON contract (``conveyor.web``).

This is the only place that maps the registry's domain errors to HTTP statuses.
"""

from typing import Any

from fastapi import FastAPI

from conveyor.errors import ConveyorError
from conveyor.web import install_error_handlers
from registry.exceptions import (
    InstanceNotFound,
    InvalidSchema,
    ModelNotFound,
    SchemaConflict,
    Unauthorized,
    VersionInUse,
)

_STATUS: dict[type[ConveyorError], int] = {
    ModelNotFound: 404,
    InstanceNotFound: 404,
    InvalidSchema: 422,
    SchemaConflict: 409,
    VersionInUse: 409,
    Unauthorized: 401,
}


def status_of(exc: ConveyorError) -> tuple[int, dict[str, Any]]:
    """The HTTP status of a domain error (and a WWW-Authenticate header with a 401)."""
    status = _STATUS.get(type(exc), 500)
    if status == 401:
        return status, {"headers": {"WWW-Authenticate": "Bearer"}}
    return status, {}


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    install_error_handlers(app, status_of)
