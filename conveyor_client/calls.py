"""What the sync and async clients share: URLs, query parameters, retries, task parsing.

No I/O here: ``Client`` and ``AsyncClient`` send what these functions describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from conveyor_client.errors import ConveyorError, error_from

RETRY_STATUSES = frozenset({429, 503})
"""Statuses retried (the gateway took nothing on: the request may be sent again)."""

TERMINAL = frozenset({"done", "failed", "cancelled"})
"""Task statuses that do not change any more."""

WAIT_SLICE = 60.0
"""The longest one ``GET /tasks/{id}?wait=`` holds (below the gateway's ``MAX_TIMEOUT``)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of answers in ``RETRY_STATUSES``: at most ``attempts`` sends in all, sleeping
    the answer's ``Retry-After`` (else ``backoff`` doubled per retry), capped at ``max_wait``."""

    attempts: int = 4
    backoff: float = 0.5
    max_wait: float = 30.0

    def delay(self, error: ConveyorError, retry: int) -> float | None:
        """Seconds to sleep before retry number ``retry`` (from 1), or None: give up."""
        if error.status not in RETRY_STATUSES or retry >= self.attempts:
            return None
        wait = error.retry_after
        if wait is None:
            wait = self.backoff * 2 ** (retry - 1)
        return min(wait, self.max_wait)


@dataclass(frozen=True)
class Task:
    """An asynchronous task as ``GET /tasks/{id}`` answers it.

    ``status`` is ``pending``, ``done``, ``failed`` or ``cancelled``; ``result`` is set when
    done, ``error`` (``{"code", "message", ...}``) when failed; ``raw`` is the whole answer.
    """

    task_id: str
    status: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Whether the task has ended (done, failed or cancelled)."""
        return self.status in TERMINAL

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Task:
        """A task from its JSON answer."""
        return cls(
            task_id=str(body["task_id"]),
            status=str(body["status"]),
            result=body.get("result"),
            error=body.get("error"),
            raw=body,
        )


def headers(api_key: str | None) -> dict[str, str]:
    """Headers every call sends: the API key as ``Authorization: Bearer``."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def predict_path(model: str) -> str:
    """``/predict/{model}``, the model name escaped."""
    return f"/predict/{quote(model, safe='')}"


def task_path(task_id: str) -> str:
    """``/tasks/{task_id}``, the id escaped."""
    return f"/tasks/{quote(task_id, safe='')}"


def predict_params(version: str | None, timeout: float | None, **extra: str) -> dict[str, str]:
    """The query of ``POST /predict``: ``version`` and the gateway's ``timeout`` if given."""
    params = dict(extra)
    if version is not None:
        params["version"] = version
    if timeout is not None:
        params["timeout"] = f"{timeout:g}"
    return params


def http_timeout(default: float, timeout: float | None) -> float:
    """The HTTP read timeout of a call whose gateway deadline is ``timeout``: a margin more."""
    return default if timeout is None else timeout + 10.0


def check(response: httpx.Response) -> None:
    """Raise the ``ConveyorError`` of an error answer (status 400 or more)."""
    if response.status_code >= 400:
        raise error_from(response.status_code, response.read(), response.headers.get("retry-after"))


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object (an error answer raises its ``ConveyorError``)."""
    check(response)
    body = response.json()
    if not isinstance(body, dict):
        raise ConveyorError(
            "the answer is not a JSON object", status=response.status_code, code="bad_answer"
        )
    return body
