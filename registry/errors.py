"""How the registry answers its errors: the shared JSON contract (``conveyor.web``).

This is the only place that maps the registry's domain errors to HTTP statuses. Redis being
unreachable is a 503 with ``Retry-After`` (code ``service_unavailable``), logged as one warning
per ``_WARN_EVERY`` seconds rather than a traceback per request.
"""

import logging
import time
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from conveyor.errors import ConveyorError
from conveyor.protocol import MODEL_NAME_PATTERN, VERSION_PATTERN
from conveyor.web import ErrorBody, error_response, install_error_handlers
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


logger = logging.getLogger(__name__)

RETRY_AFTER = 1
"""Seconds a 503 asks the client to wait."""

_WARN_EVERY = 30.0

REDIS_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "Redis is unreachable; retry after Retry-After"}
}
"""The answer every route that reads or writes Redis may give (for the OpenAPI document)."""


class _RedisOutage:
    """Answers a request that found Redis unreachable; warns once per ``_WARN_EVERY`` s."""

    def __init__(self) -> None:
        self._warned_at: float | None = None

    async def __call__(self, request: Request, exc: Exception) -> JSONResponse:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at > _WARN_EVERY:
            self._warned_at = now
            logger.warning("Redis unreachable (%s: %s); answering 503", type(exc).__name__, exc)
        return error_response(
            503,
            "service_unavailable",
            f"Redis is unreachable: {type(exc).__name__}",
            headers={"Retry-After": str(RETRY_AFTER)},
            dependency="redis",
        )


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    install_error_handlers(
        app,
        status_of,
        path_patterns={"name": MODEL_NAME_PATTERN.pattern, "version": VERSION_PATTERN.pattern},
    )
    outage = _RedisOutage()
    app.add_exception_handler(aioredis.RedisError, outage)
    app.add_exception_handler(ConnectionError, outage)
