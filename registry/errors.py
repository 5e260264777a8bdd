"""How the registry answers its errors: the shared JSON contract (``conveyor.web``).

This is the only place that maps the registry's domain errors to HTTP statuses.
"""

from typing import Any

from fastapi import FastAPI

from conveyor.errors import ConveyorError
from conveyor.web import install_error_handlers
from registry.exceptions import InstanceNotFound, InvalidSchema, ModelNotFound

_STATUS: dict[type[ConveyorError], int] = {
    ModelNotFound: 404,
    InstanceNotFound: 404,
    InvalidSchema: 422,
}


def status_of(exc: ConveyorError) -> tuple[int, dict[str, Any]]:
    """The HTTP status of a domain error (no extra keys)."""
    return _STATUS.get(type(exc), 500), {}


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    install_error_handlers(app, status_of)
