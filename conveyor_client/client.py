"""``Client``: the synchronous Conveyor client (httpx)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from conveyor_client import calls as rq
from conveyor_client.errors import ConveyorError
from conveyor_client.sse import StreamEvent, decode, frames

T = TypeVar("T")


class Client:
    """Calls a Conveyor gateway: ``predict``, ``submit``/``status``/``wait``/``cancel``,
    ``stream``.

    ``base_url`` is the gateway (``http://localhost:8000``); ``api_key`` is sent as
    ``Authorization: Bearer``; ``timeout`` is the HTTP timeout of a call without a deadline of
    its own; ``retry`` says how 429 and 503 answers are retried (``Retry-After`` honoured,
    bounded attempts). ``transport`` replaces httpx's (tests). Use as a context manager, or
    call ``close``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retry: rq.RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=rq.headers(api_key), timeout=timeout, transport=transport
        )
        self._timeout = timeout
        self._retry = retry or rq.RetryPolicy()
        self._sleep = sleep

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _retrying(self, call: Callable[[], T]) -> T:
        retry = 0
        while True:
            try:
                return call()
            except ConveyorError as error:
                retry += 1
                delay = self._retry.delay(error, retry)
                if delay is None:
                    raise
                self._sleep(delay)

    def predict(
        self,
        model: str,
        request: dict[str, Any],
        *,
        version: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run ``model`` (``version``, else its default) on ``request``; return its response.

        ``timeout`` is the gateway's deadline in seconds (its ``DEFAULT_TIMEOUT`` if None).
        Raises the ``ConveyorError`` of an error answer after the retries.
        """
        params = rq.predict_params(version, timeout)
        return self._retrying(
            lambda: rq.json_object(
                self._http.post(
                    rq.predict_path(model),
                    json=request,
                    params=params,
                    timeout=rq.http_timeout(self._timeout, timeout),
                )
            )
        )

    def submit(
        self,
        model: str,
        request: dict[str, Any],
        *,
        version: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Queue ``request`` for ``model`` (``?mode=async``) and return the task id.

        With ``idempotency_key`` every submit of the same request with that key answers the
        same task (so retrying a submit is safe).
        """
        params = rq.predict_params(version, None, mode="async")
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = self._retrying(
            lambda: rq.json_object(
                self._http.post(rq.predict_path(model), json=request, params=params, headers=extra)
            )
        )
        return str(body["task_id"])

    def status(self, task_id: str) -> rq.Task:
        """The task's state now (``GET /tasks/{id}``)."""
        return rq.Task.parse(
            self._retrying(lambda: rq.json_object(self._http.get(rq.task_path(task_id))))
        )

    def wait(self, task_id: str, timeout: float) -> rq.Task:
        """The task once it has ended, or as it stands after ``timeout`` seconds.

        Holds ``GET /tasks/{id}?wait=`` (in slices of at most a minute) rather than polling.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            wait = min(left, rq.WAIT_SLICE)
            task = rq.Task.parse(
                self._retrying(
                    lambda w=wait: rq.json_object(  # type: ignore[misc]
                        self._http.get(
                            rq.task_path(task_id),
                            params={"wait": f"{w:.3f}"},
                            timeout=w + 10.0,
                        )
                    )
                )
            )
            if task.finished or left <= wait:
                return task

    def cancel(self, task_id: str) -> rq.Task:
        """Cancel a task no worker has started (``DELETE /tasks/{id}``); it reads
        ``cancelled``. A task that runs or has ended raises ``ConflictError``."""
        return rq.Task.parse(
            self._retrying(lambda: rq.json_object(self._http.delete(rq.task_path(task_id))))
        )

    def stream(
        self,
        model: str,
        request: dict[str, Any],
        *,
        version: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[StreamEvent]:
        """The response in pieces (``POST /predict/{model}?stream=true``).

        Yields ``Piece`` per piece, ``Restart`` when the gateway says the stream starts again
        (the caller discards the pieces it has: the client does not hide a restart), and a last
        ``Done`` with the whole response. An error before the first piece is retried like
        ``predict``'s; an ``error`` event is raised as its ``ConveyorError``.
        """
        params = rq.predict_params(version, timeout, stream="true")
        retry = 0
        while True:
            with self._http.stream(
                "POST",
                rq.predict_path(model),
                json=request,
                params=params,
                headers={"Accept": "text/event-stream"},
                timeout=rq.http_timeout(self._timeout, timeout),
            ) as response:
                try:
                    rq.check(response)
                except ConveyorError as error:
                    retry += 1
                    delay = self._retry.delay(error, retry)
                    if delay is None:
                        raise
                    self._sleep(delay)
                    continue
                for raw in frames(response.iter_lines()):
                    yield decode(raw)
                return
