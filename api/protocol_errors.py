"""Errors on the paths of the protocol front ends (the Open Inference Protocol under ``/v2``,
the OpenAI-compatible API under ``/v1``): one reading of any exception, which each front end
renders in its own JSON shape, and what they share to answer with it.

``failure_of`` reads an exception as the gateway answers it: the status is the gateway's for
the same error (``api.routes.errors.status_of``), except that a request that does not fit (the
gateway's 422) is the protocols' 400, and that a front end's own errors (and ``ClientGone``)
carry theirs; the message; the request field at fault, when one is; the error code
(``model_not_found``, ``overloaded``, ...); the headers (``Retry-After`` with a 429 or 503, as
elsewhere). Anything unexpected is logged and is a 500 that says to read the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.exceptions import GatewayError
from api.pieces import ClientGone
from api.routes.errors import status_of
from conveyor.errors import ConveyorError
from conveyor.web import allowed_methods

__all__ = [
    "INTERNAL_MESSAGE",
    "Failure",
    "ProtocolRoute",
    "answer_unknown_paths",
    "error_responses",
    "failure_of",
]

logger = logging.getLogger(__name__)

INTERNAL_MESSAGE: Final = "internal error; see the gateway's log"


@dataclass(frozen=True)
class Failure:
    """An exception as a protocol answers it."""

    status: int
    message: str
    code: str
    field: str | None = None
    headers: Mapping[str, str] | None = None


def failure_of(
    exc: Exception, own: tuple[type[GatewayError], ...] = (), *, api: str = "a protocol"
) -> Failure:
    """``exc`` read as an answer (see the module doc). ``own``: the front end's error classes,
    each with its HTTP ``status`` (400 when one has none); ``api`` names the front end in the
    log of an unexpected exception."""
    if isinstance(exc, GatewayError) and isinstance(exc, (*own, ClientGone)):
        status = int(getattr(exc, "status", 400))
        return Failure(status, exc.message, exc.code, exc.field)
    if isinstance(exc, ConveyorError):
        status, extra = status_of(exc)
        return Failure(
            400 if status == 422 else status,
            exc.message,
            exc.code,
            extra.get("field"),
            extra.get("headers"),
        )
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or None
        message = f"{field or 'body'}: {first.get('msg', 'invalid')}"
        return Failure(400, message, "invalid_request", field)
    if isinstance(exc, StarletteHTTPException):
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return Failure(exc.status_code, str(exc.detail), code, headers=exc.headers)
    logger.exception("unhandled error on %s path", api, exc_info=exc)
    return Failure(500, INTERNAL_MESSAGE, "internal")


class ProtocolRoute(APIRoute):
    """A route whose every error is answered by ``answer`` (a subclass gives it): the front
    end's JSON error shape, never FastAPI's."""

    @staticmethod
    def answer(exc: Exception) -> Response:
        """The answer to ``exc``, raised by the route's handler."""
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        answer = self.answer

        async def answered(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                return answer(exc)

        return answered


def answer_unknown_paths(router: APIRouter, paths: str, *, bare: bool = False) -> None:
    """Add to ``router`` (after its own routes) a route for every other path under its prefix,
    and for the prefix itself with ``bare``: 405 naming the methods allowed on a path it has,
    else 404 saying which ``paths`` there are."""

    async def unknown_path(request: Request) -> NoReturn:
        allowed = ", ".join(allowed_methods(router.routes, request.url.path, ignore=unknown_path))
        if allowed:
            raise StarletteHTTPException(
                405,
                f"{request.method} is not allowed on {request.url.path} (use {allowed})",
                headers={"Allow": allowed},
            )
        raise StarletteHTTPException(404, f"no such path: {request.url.path} ({paths})")

    for path in ("", "/{path:path}") if bare else ("/{path:path}",):
        router.api_route(
            path,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            include_in_schema=False,
            response_model=None,
        )(unknown_path)


_COMMON: Final = {
    401: "API_KEYS is set and no valid bearer key was sent",
    413: "Body larger than MAX_BODY_BYTES",
    429: "Overloaded; retry after Retry-After seconds",
    500: "The model failed on this request",
    502: "The worker's answer did not parse",
    503: "No live worker, or a broker or the registry unreachable",
    504: "No result before the timeout",
}


def error_responses(
    body: type[Any], descriptions: Mapping[int, str]
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of every error a front end's path can answer, each with the
    front end's error ``body`` model: the statuses every front end shares, and
    ``descriptions`` (at least 400 and 404: what they mean there; more of its own)."""
    described = {**_COMMON, **descriptions}
    return {
        status: {"model": body, "description": described[status]} for status in sorted(described)
    }
