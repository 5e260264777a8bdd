"""``AsyncClient``: the asyncio Conveyor client (httpx), the same calls as ``Client``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from conveyor_client import calls as rq
from conveyor_client.errors import ConveyorError
from conveyor_client.sse import Framer, StreamEvent, decode

T = TypeVar("T")


class AsyncClient:
    """The asyncio twin of ``Client`` (same arguments, same calls, awaited).

    Use as ``async with AsyncClient(...) as client``, or call ``aclose``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retry: rq.RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=rq.headers(api_key), timeout=timeout, transport=transport
        )
        self._timeout = timeout
        self._retry = retry or rq.RetryPolicy()
        self._sleep = sleep

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _retrying(self, call: Callable[[], Awaitable[httpx.Response]]) -> dict[str, Any]:
        retry = 0
        while True:
            try:
                return rq.json_object(await call())
            except ConveyorError as error:
                retry += 1
                delay = self._retry.delay(error, retry)
                if delay is None:
                    raise
                await self._sleep(delay)

    async def predict(
        self,
        model: str,
        request: dict[str, Any],
        *,
        version: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the gateway's deadline (?timeout=)
    ) -> dict[str, Any]:
        """As ``Client.predict``."""
        params = rq.predict_params(version, timeout)
        return await self._retrying(
            lambda: self._http.post(
                rq.predict_path(model),
                json=request,
                params=params,
                timeout=rq.http_timeout(self._timeout, timeout),
            )
        )

    async def submit(
        self,
        model: str,
        request: dict[str, Any],
        *,
        version: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """As ``Client.submit``: the task id."""
        params = rq.predict_params(version, None, mode="async")
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = await self._retrying(
            lambda: self._http.post(
                rq.predict_path(model), json=request, params=params, headers=extra
            )
        )
        return str(body["task_id"])

    async def status(self, task_id: str) -> rq.Task:
        """As ``Client.status``."""
        return rq.Task.parse(await self._retrying(lambda: self._http.get(rq.task_path(task_id))))

    async def wait(self, task_id: str, timeout: float) -> rq.Task:  # noqa: ASYNC109 - ?wait=
        """As ``Client.wait``."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            wait = min(left, rq.WAIT_SLICE)
            body = await self._retrying(
                lambda w=wait: self._http.get(  # type: ignore[misc]
                    rq.task_path(task_id), params={"wait": f"{w:.3f}"}, timeout=w + 10.0
                )
            )
            task = rq.Task.parse(body)
            if task.finished or left <= wait:
                return task

    async def cancel(self, task_id: str) -> rq.Task:
        """As ``Client.cancel``."""
        return rq.Task.parse(await self._retrying(lambda: self._http.delete(rq.task_path(task_id))))

    async def stream(
        self,
        model: str,
        request: dict[str, Any],
        *,
        version: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the gateway's deadline (?timeout=)
    ) -> AsyncIterator[StreamEvent]:
        """As ``Client.stream`` (an async iterator; ``Restart`` is yielded to the caller)."""
        params = rq.predict_params(version, timeout, stream="true")
        retry = 0
        while True:
            async with self._http.stream(
                "POST",
                rq.predict_path(model),
                json=request,
                params=params,
                headers={"Accept": "text/event-stream"},
                timeout=rq.http_timeout(self._timeout, timeout),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    try:
                        rq.check(response)
                    except ConveyorError as error:
                        retry += 1
                        delay = self._retry.delay(error, retry)
                        if delay is None:
                            raise
                        await self._sleep(delay)
                        continue
                framer = Framer()
                async for line in response.aiter_lines():
                    raw = framer.feed(line)
                    if raw is not None:
                        yield decode(raw)
                last = framer.finish()
                if last is not None:
                    yield decode(last)
                return
