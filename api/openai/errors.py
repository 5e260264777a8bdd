"""Errors on the OpenAI-compatible paths, in OpenAI's shape, which its clients parse:
``{"error": {"message", "type", "param", "code"}}``.

Status, message, code and headers are the protocol front ends' (``api.protocol_errors``): the
gateway's status for the same error, except that a request that does not fit (the gateway's
422) is OpenAI's 400. ``type`` follows the status (``invalid_request_error``,
``authentication_error``, ``rate_limit_error``, ``server_error``); ``code`` is the gateway's
error code (``model_not_found``, ``overloaded``, ``timeout``, ...); ``param`` names the request
field at fault, when one is. ``Retry-After`` goes with a 429 or 503 as elsewhere.

OpenAIRefusal (api.exceptions.GatewayError)   -- a request OpenAI's format allows but the
                                                 gateway does not serve, or a bad field (400)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from api.exceptions import GatewayError
from api.protocol_errors import ProtocolRoute, error_responses, failure_of

__all__ = [
    "ERROR_RESPONSES",
    "OpenAIErrorBody",
    "OpenAIRefusal",
    "OpenAIRoute",
    "error_object",
    "openai_error",
]


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


def _detail(exc: Exception) -> tuple[int, dict[str, Any], Mapping[str, str] | None]:
    failure = failure_of(exc, (OpenAIRefusal,), api="an OpenAI-compatible")
    body = {
        "message": failure.message,
        "type": error_type(failure.status),
        "param": failure.field,
        "code": failure.code,
    }
    return failure.status, body, failure.headers


def openai_error(exc: Exception) -> JSONResponse:
    """OpenAI's error answer for any exception raised on a ``/v1`` path."""
    status, body, headers = _detail(exc)
    return JSONResponse(status_code=status, content={"error": body}, headers=headers)


def error_object(exc: Exception) -> dict[str, Any]:
    """The error object for ``exc`` as a stream's last ``data:`` carries it: ``{"error":
    {...}}`` (the openai client raises ``APIError`` on it)."""
    return {"error": _detail(exc)[1]}


class OpenAIRoute(ProtocolRoute):
    """A route whose every error is answered in OpenAI's shape."""

    @staticmethod
    def answer(exc: Exception) -> Response:
        """The protocol's error answer."""
        return openai_error(exc)


class OpenAIErrorDetail(BaseModel):
    """What went wrong."""

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error object."""

    error: OpenAIErrorDetail


ERROR_RESPONSES: Final = error_responses(
    OpenAIErrorBody,
    {
        400: "A malformed request, or a feature the gateway lacks (n > 1, logprobs, tools, ...)",
        404: "Unknown model or path",
    },
)
"""Every error a ``/v1`` path can answer, documented once for all of them."""
