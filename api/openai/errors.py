"""Errors on the OpenAI-compatible paths, in OpenAI's shape, which its clients parse:
``{"error": {"message", "type", "param", "code"}}``.

The status is the gateway's for the same error (``api.routes.errors.status_of``), except that a
request that does not fit (the gateway's 422) is OpenAI's 400. ``type`` follows the status
(``invalid_request_error``, ``authentication_error``, ``rate_limit_error``, ``server_error``);
``code`` is the gateway's error code (``model_not_found``, ``overloaded``, ``timeout``, ...);
``param`` names the request field at fault, when one is. ``Retry-After`` goes with a 429 or 503
as elsewhere.

OpenAIRefusal (api.exceptions.GatewayError)   -- a request OpenAI's format allows but the
                                                 gateway does not serve, or a bad field (400)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.exceptions import GatewayError
from api.pieces import ClientGone
from api.routes.errors import status_of
from conveyor.errors import ConveyorError

__all__ = [
    "ERROR_RESPONSES",
    "OpenAIErrorBody",
    "OpenAIRefusal",
    "OpenAIRoute",
    "error_object",
    "openai_error",
]

logger = logging.getLogger(__name__)


class OpenAIRefusal(GatewayError):
    """A request the OpenAI-compatible endpoints refuse (400); ``field`` is OpenAI's ``param``."""

    code = "invalid_request"
    status = 400

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message, field=param)
        if code is not None:
            self.code = code


_TYPES: Final = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    if status in _TYPES:
        return _TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def _failure(exc: Exception) -> tuple[int, dict[str, Any], Mapping[str, str] | None]:
    headers: Mapping[str, str] | None = None
    if isinstance(exc, OpenAIRefusal | ClientGone):
        status, message, param, code = exc.status, exc.message, exc.field, exc.code
    elif isinstance(exc, ConveyorError):
        status, extra = status_of(exc)
        headers = extra.get("headers")
        status = 400 if status == 422 else status
        message, param, code = exc.message, extra.get("field"), exc.code
    elif isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = ".".join(location) or None
        message = f"{param or 'body'}: {first.get('msg', 'invalid')}"
        status, code = 400, "invalid_request"
    elif isinstance(exc, StarletteHTTPException):
        status, message, headers = exc.status_code, str(exc.detail), exc.headers
        param, code = None, "not_found" if status == 404 else f"http_{status}"
    else:
        logger.exception("unhandled error on an OpenAI-compatible path", exc_info=exc)
        status, message, param, code = (
            500,
            "internal error; see the gateway's log",
            None,
            "internal",
        )
    body = {"message": message, "type": error_type(status), "param": param, "code": code}
    return status, body, headers


def openai_error(exc: Exception) -> JSONResponse:
    """OpenAI's error answer for any exception raised on a ``/v1`` path."""
    status, body, headers = _failure(exc)
    return JSONResponse(status_code=status, content={"error": body}, headers=headers)


def error_object(exc: Exception) -> dict[str, Any]:
    """The error object for ``exc`` as a stream's last ``data:`` carries it: ``{"error":
    {...}}`` (the openai client raises ``APIError`` on it)."""
    return {"error": _failure(exc)[1]}


class OpenAIRoute(APIRoute):
    """A route whose every error is answered in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                return openai_error(exc)

        return answer


class OpenAIErrorDetail(BaseModel):
    """What went wrong."""

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error object."""

    error: OpenAIErrorDetail


_ERROR = {"model": OpenAIErrorBody}
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: {**_ERROR, "description": "A malformed request, or a feature the gateway lacks (n > 1, "
          "logprobs, tools, ...)"},
    401: {**_ERROR, "description": "API_KEYS is set and no valid bearer key was sent"},
    404: {**_ERROR, "description": "Unknown model or path"},
    413: {**_ERROR, "description": "Body larger than MAX_BODY_BYTES"},
    429: {**_ERROR, "description": "Overloaded; retry after Retry-After seconds"},
    500: {**_ERROR, "description": "The model failed on this request"},
    502: {**_ERROR, "description": "The worker's answer did not parse"},
    503: {**_ERROR, "description": "No live worker, or a broker or the registry unreachable"},
    504: {**_ERROR, "description": "No result before the timeout"},
}  # fmt: skip
"""Every error a ``/v1`` path can answer, documented once for all of them."""
