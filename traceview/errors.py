"""How traceview answers its errors: the shared JSON contract (``conveyor.web``).

This is the only place that maps traceview's domain errors to HTTP statuses.
"""

from typing import Any

from fastapi import FastAPI

from conveyor.errors import ConveyorError
from conveyor.web import install_error_handlers
from traceview.exceptions import InvalidExport, TraceNotFound, UnsupportedEncoding
from traceview.spans import TRACE_ID_PATTERN

_STATUS: dict[type[ConveyorError], int] = {
    TraceNotFound: 404,
    InvalidExport: 400,
    UnsupportedEncoding: 415,
}


def status_of(exc: ConveyorError) -> tuple[int, dict[str, Any]]:
    """The HTTP status of a domain error."""
    return _STATUS.get(type(exc), 500), {}


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    install_error_handlers(app, status_of, path_patterns={"trace_id": TRACE_ID_PATTERN})
