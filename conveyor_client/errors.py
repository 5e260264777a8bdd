"""Typed errors mirroring the gateway's JSON error contract (docs/api.md, "Errors").

Every error answer is ``{"error": {"code", "message", "model", "field", ...}}``; the client
raises one exception class per family of codes, each carrying the answer's ``status``,
``code``, ``message``, ``model``, ``field``, ``task_id`` and ``retry_after`` (seconds, from the
``Retry-After`` header) where the gateway sent them. Catch ``ConveyorError`` for all of them.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any


class ConveyorError(Exception):
    """An error answer of the gateway (or an ``error`` event of a stream)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        model: str | None = None,
        field: str | None = None,
        task_id: str | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.model = model
        self.field = field
        self.task_id = task_id
        self.retry_after = retry_after
        self.body = body or {}


class InvalidRequestError(ConveyorError):
    """422/400 ``invalid_request`` (the body or a parameter) or ``invalid_argument`` (the
    model refused the request); ``field`` names what was wrong."""


class UnauthorizedError(ConveyorError):
    """401 ``unauthorized``: no valid API key (``Client(api_key=...)``)."""


class NotFoundError(ConveyorError):
    """404 ``model_not_found``, ``task_not_found`` or ``not_found``."""


class ConflictError(ConveyorError):
    """409 ``task_conflict``: cancelling a task that runs or has finished."""


class PayloadError(ConveyorError):
    """413 ``body_too_large`` or 415 ``unsupported_media_type``."""


class OverloadedError(ConveyorError):
    """429 ``overloaded``: the gateway or the model's queue is full (``retry_after`` set)."""


class UnavailableError(ConveyorError):
    """503 ``model_unavailable``, ``service_unavailable``, ``registry_unavailable``."""


class ModelError(ConveyorError):
    """500/502 ``model_error``, ``bad_task``, ``dead_lettered``, ``bad_result``, ``internal``:
    the model (or the service) failed on this request."""


class TimeoutError(ConveyorError):
    """504 ``timeout`` or ``deadline_exceeded``; ``task_id`` is set when the task was queued
    (its result may still be read with ``wait``)."""


_BY_CODE: dict[str, type[ConveyorError]] = {
    "invalid_request": InvalidRequestError,
    "invalid_argument": InvalidRequestError,
    "bad_request": InvalidRequestError,
    "unauthorized": UnauthorizedError,
    "model_not_found": NotFoundError,
    "task_not_found": NotFoundError,
    "not_found": NotFoundError,
    "task_conflict": ConflictError,
    "body_too_large": PayloadError,
    "unsupported_media_type": PayloadError,
    "overloaded": OverloadedError,
    "too_many_requests": OverloadedError,
    "model_unavailable": UnavailableError,
    "service_unavailable": UnavailableError,
    "registry_unavailable": UnavailableError,
    "model_error": ModelError,
    "bad_task": ModelError,
    "dead_lettered": ModelError,
    "bad_result": ModelError,
    "internal": ModelError,
    "timeout": TimeoutError,
    "deadline_exceeded": TimeoutError,
}

_BY_STATUS: dict[int, type[ConveyorError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadError,
    415: PayloadError,
    422: InvalidRequestError,
    429: OverloadedError,
    500: ModelError,
    502: ModelError,
    503: UnavailableError,
    504: TimeoutError,
}


def retry_after_seconds(value: str | None) -> float | None:
    """The ``Retry-After`` header in seconds (the gateway sends an integer), or None."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from(status: int, body: bytes, retry_after: str | None = None) -> ConveyorError:
    """The exception for an error answer: by its ``code`` first, else by its status.

    A body that is not the contract's JSON (a proxy's page, say) still gives an error of the
    status's class, with code ``http_<status>`` and the body's start as message.
    """
    parsed: Any = None
    with contextlib.suppress(ValueError):
        parsed = json.loads(body)
    detail = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(detail, str):  # the /v2 shape: {"error": "<message>"}
        detail = {"code": f"http_{status}", "message": detail}
    if not isinstance(detail, dict):
        text = body[:200].decode("utf-8", "replace")
        detail = {"code": f"http_{status}", "message": text or f"HTTP {status}"}
    code = str(detail.get("code", f"http_{status}"))
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, ConveyorError)
    return cls(
        str(detail.get("message", "")),
        status=status,
        code=code,
        model=_text(detail.get("model")),
        field=_text(detail.get("field")),
        task_id=_text(detail.get("task_id")),
        retry_after=retry_after_seconds(retry_after),
        body=parsed if isinstance(parsed, dict) else None,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
