"""The HTTP error contract of every Conveyor service: ``{"error": {"code", "message", ...}}``.

- ``code`` is snake_case and stable; ``message`` says what was wrong, for a person.
- Services add context keys (``model``, ``field``, ``task_id``...) where they have them.
- Request validation errors use the same shape (code ``invalid_request``, ``field`` named).
- Unknown paths and methods use it too (``not_found``, ``method_not_allowed``).
- Anything unexpected is logged once and answered as a JSON 500 (code ``internal``): a service
  never answers a plain-text 500.

A service maps its own domain errors to statuses in its route layer and passes the mapping to
``install_error_handlers``.
"""

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.errors import ConveyorError

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "allowed_methods",
    "domain_error_response",
    "error_body",
    "error_response",
    "install_error_handlers",
    "internal_error_response",
]

logger = logging.getLogger(__name__)

StatusOf = Callable[[ConveyorError], tuple[int, dict[str, Any]]]
"""Maps a domain error to its HTTP status and extra error keys (``headers`` becomes headers)."""

ContextOf = Callable[[Request], dict[str, Any]]
"""Error keys every answer of a service carries (e.g. the gateway's ``model`` and ``field``)."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ErrorDetail(BaseModel):
    """What went wrong: a stable snake_case ``code`` and a readable ``message``."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer of every Conveyor service."""

    error: ErrorDetail


def error_body(code: str, message: str, /, **extra: Any) -> dict[str, Any]:
    """Build the JSON error body."""
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int,
    code: str,
    message: str,
    /,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build a JSON error response."""
    return JSONResponse(
        status_code=status, content=error_body(code, message, **extra), headers=headers
    )


def domain_error_response(
    exc: ConveyorError, status_of: StatusOf, context: Mapping[str, Any]
) -> JSONResponse:
    """The answer to a domain error: status, keys and headers from ``status_of``, over the
    keys of ``context`` every error of the service carries (the error's own keys win)."""
    status, extra = status_of(exc)
    headers = extra.pop("headers", None)
    return error_response(status, exc.code, exc.message, headers=headers, **{**context, **extra})


INTERNAL_ERROR_MESSAGE = "internal error; see the service's log"
"""What a 500 says of an exception nothing handled (the exception itself is only logged)."""


def internal_error_response() -> JSONResponse:
    """The answer to an exception no handler took (after it was logged)."""
    return error_response(500, "internal", INTERNAL_ERROR_MESSAGE)


def allowed_methods(
    routes: Sequence[BaseRoute], path: str, *, ignore: Callable[..., Any] | None = None
) -> list[str]:
    """Every method some route among ``routes`` (an app's or a router's, included routers
    followed) serves at ``path``, sorted: a 405's ``Allow``. Starlette's router answers a 405
    with the methods of the first route whose path matched, although several routes, one per
    method, may share a path. ``ignore``: an endpoint to leave out (a catch-all)."""
    methods: set[str] = set()
    for route in iter_route_contexts(routes):
        template = route.path
        if (
            template
            and route.methods
            and route.endpoint is not ignore
            and _path_regex(template).match(path)
        ):
            methods |= route.methods
    return sorted(methods)


@functools.lru_cache(maxsize=1024)
def _path_regex(template: str) -> re.Pattern[str]:
    return compile_path(template)[0]


def _no_context(request: Request) -> dict[str, Any]:
    return {}


def install_error_handlers(
    app: FastAPI,
    status_of: StatusOf,
    context_of: ContextOf = _no_context,
    other_contract: tuple[str, ...] = (),
    path_patterns: Mapping[str, str] | None = None,
) -> None:
    """Answer every error of ``app`` in the contract's shape.

    ``status_of`` maps domain errors to a status; ``context_of`` gives keys every error body of
    this service carries (a domain error's own keys win). Paths under ``other_contract``
    prefixes answer errors in another shape (the gateway's ``/v2``): their routes document their
    own errors, and FastAPI's default 422 entry is dropped from them. ``path_patterns``
    documents the pattern a path or query parameter of that name must match (checked by the service
    itself, so a client knows what a 422 means).
    """

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConveyorError)
        return domain_error_response(exc, status_of, context_of(request))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        location = [str(part) for part in first.get("loc", ())]
        field = location[-1] if location else None
        message = f"{'.'.join(location)}: {first.get('msg', 'invalid')}"
        keys = {**context_of(request), "field": field}
        return error_response(422, "invalid_request", message, **keys)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message, headers = str(exc.detail), exc.headers
        if exc.status_code == 405:
            allowed = ", ".join(allowed_methods(request.app.routes, request.url.path))
            message = f"{request.method} is not allowed on {request.url.path} (use {allowed})"
            headers = {**(headers or {}), "Allow": allowed}
        return error_response(
            exc.status_code, code, message, headers=headers, **context_of(request)
        )

    app.add_exception_handler(ConveyorError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(CatchAllMiddleware)
    _document_validation_errors(app, other_contract, path_patterns or {})


def _document_validation_errors(
    app: FastAPI, other_contract: tuple[str, ...], path_patterns: Mapping[str, str]
) -> None:
    """Make the OpenAPI document say what a 422 really is: the error object, not FastAPI's
    ``HTTPValidationError`` (whose shape no answer of a Conveyor service has)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        error_ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path, operations in schema.get("paths", {}).items():
            other = bool(other_contract) and path.startswith(other_contract)
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    pattern = path_patterns.get(parameter.get("name", ""))
                    if parameter.get("in") in ("path", "query") and pattern is not None:
                        parameter.setdefault("schema", {})["pattern"] = f"^{pattern}$"
                responses = operation.get("responses", {})
                invalid = responses.get("422")
                if invalid is None or "HTTPValidationError" not in str(invalid):
                    continue
                if other:
                    # The other contract answers its own validation errors (e.g. 400).
                    del responses["422"]
                else:
                    responses["422"] = {
                        "description": "The request is not valid",
                        "content": {"application/json": {"schema": error_ref}},
                    }
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in body.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault("ErrorBody", body)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class CatchAllMiddleware:
    """Turns an exception no handler took into a logged JSON 500 (never plain text).

    If the response had already started, the exception is logged and the connection closed:
    there is nothing more a server can say then.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                return
            await internal_error_response()(scope, receive, send)
