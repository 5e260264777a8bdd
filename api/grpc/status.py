"""The gRPC status of every error a call can end with.

The gateway maps its domain errors to HTTP statuses in one place (``api.routes.errors``); a
call over gRPC ends with the status code that stands for the same HTTP status, and the same
message. The HTTP status also gives the call's ``outcome`` in the gateway's metrics, so REST
and gRPC count alike.
"""

import logging
from dataclasses import dataclass
from typing import Final

import grpc

from api.oip.exceptions import OipError
from api.routes.errors import status_of
from conveyor.errors import ConveyorError

__all__ = ["CODES", "Failure", "failure_of"]

logger = logging.getLogger(__name__)

CODES: Final[dict[int, grpc.StatusCode]] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
"""The gRPC code of each HTTP status the gateway answers (a 502, an unreadable answer from a
worker, is the server's fault: INTERNAL)."""


@dataclass(frozen=True)
class Failure:
    """How a call ends when something was wrong."""

    code: grpc.StatusCode
    message: str
    """For a person: what was wrong (the REST API's message for the same error)."""
    http_status: int
    """The status REST answers for the same error (the metrics' outcome)."""
    retry_after: int | None = None
    """Seconds to wait before retrying (sent as ``retry-after`` trailing metadata)."""


def failure_of(exc: Exception) -> Failure:
    """The status of a call that raised ``exc``; an unexpected exception is logged and ends
    the call INTERNAL without its details."""
    if isinstance(exc, OipError):
        status, message, retry_after = exc.status, exc.message, None
    elif isinstance(exc, ConveyorError):
        status, extra = status_of(exc)
        message = exc.message
        headers = extra.get("headers") or {}
        retry_after = int(headers["Retry-After"]) if "Retry-After" in headers else None
    else:
        logger.exception("unhandled error in a gRPC call", exc_info=exc)
        status, message, retry_after = 500, "internal error; see the gateway's log", None
    return Failure(CODES.get(status, grpc.StatusCode.INTERNAL), message, status, retry_after)
