"""Drives conveyor-client against a gateway, run by test_venv.py with the venv's python.

    python client_script.py API_URL API_KEY MODEL

Prints one JSON line: what each call of ``Client`` and ``AsyncClient`` returned or raised.
Imports only what the venv has (the conveyor-client wheel and its httpx).
"""

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import conveyor_client as cc


def running(status: Callable[[], cc.Task]) -> None:
    """Wait (up to 5 s) until the task's stage is ``running``."""
    for _ in range(100):
        if status().raw.get("stage") == "running":
            return
        time.sleep(0.05)
    raise AssertionError("the task did not start")


def described(error: cc.ConveyorError) -> list[Any]:
    return [type(error).__name__, error.status, error.code]


def sync_calls(url: str, key: str, model: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with cc.Client(url, api_key=key) as client:
        out["predict"] = client.predict(model, {"text": "hi"}, timeout=30)
        out["predict_version"] = client.predict(model, {"text": "v"}, version="1")
        task_id = client.submit(model, {"text": "later"})
        task = client.wait(task_id, timeout=30)
        out["wait"] = {"status": task.status, "result": task.result}
        out["status"] = client.status(task_id).status
        busy = client.submit(model, {"text": "busy", "seconds": 3})
        running(lambda: client.status(busy))
        queued = client.submit(model, {"text": "queued"})
        out["cancel"] = client.cancel(queued).status
        try:
            client.cancel(busy)
        except cc.ConflictError as error:
            out["conflict"] = described(error)
        client.wait(busy, timeout=30)
        out["stream"] = [
            [type(e).__name__, getattr(e, "data", None)]
            for e in client.stream(model, {"text": "stream"})
        ]
        try:
            client.predict(model, {"text": "bad"})
        except cc.InvalidRequestError as error:
            out["invalid"] = [*described(error), error.field, error.model]
        try:
            client.predict(model + "_nope", {"text": "x"})
        except cc.NotFoundError as error:
            out["not_found"] = described(error)
    with cc.Client(url, api_key="wrong") as stranger:
        try:
            stranger.predict(model, {"text": "x"})
        except cc.UnauthorizedError as error:
            out["unauthorized"] = described(error)
    out["retry"] = retried(url, key, model, attempts=6)
    out["no_retry"] = retried(url, key, model, attempts=1)
    return out


def retried(url: str, key: str, model: str, attempts: int) -> Any:
    """A call while a slow one holds the gateway's one place (MAX_INFLIGHT=1)."""
    with cc.Client(url, api_key=key) as holder:
        slow = threading.Thread(target=holder.predict, args=(model, {"text": "slow", "seconds": 3}))
        slow.start()
        time.sleep(1.0)
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            time.sleep(seconds)

        with cc.Client(url, api_key=key, retry=cc.RetryPolicy(attempts=attempts), sleep=sleep) as c:
            try:
                return {"result": c.predict(model, {"text": "fast"}), "sleeps": sleeps}
            except cc.OverloadedError as error:
                return [*described(error), error.retry_after]
            finally:
                slow.join()


async def async_calls(url: str, key: str, model: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with cc.AsyncClient(url, api_key=key) as client:
        out["predict"] = await client.predict(model, {"text": "hi"}, timeout=30)
        out["predict_version"] = await client.predict(model, {"text": "v"}, version="1")
        task_id = await client.submit(model, {"text": "later"})
        task = await client.wait(task_id, timeout=30)
        out["wait"] = {"status": task.status, "result": task.result}
        out["status"] = (await client.status(task_id)).status
        busy = await client.submit(model, {"text": "busy", "seconds": 3})
        for _ in range(100):
            if (await client.status(busy)).raw.get("stage") == "running":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the task did not start")
        queued = await client.submit(model, {"text": "queued"})
        out["cancel"] = (await client.cancel(queued)).status
        try:
            await client.cancel(busy)
        except cc.ConflictError as error:
            out["conflict"] = described(error)
        await client.wait(busy, timeout=30)
        out["stream"] = [
            [type(e).__name__, getattr(e, "data", None)]
            async for e in client.stream(model, {"text": "stream"})
        ]
        try:
            await client.predict(model, {"text": "bad"})
        except cc.InvalidRequestError as error:
            out["invalid"] = [*described(error), error.field, error.model]
        try:
            await client.predict(model + "_nope", {"text": "x"})
        except cc.NotFoundError as error:
            out["not_found"] = described(error)
    async with cc.AsyncClient(url, api_key="wrong") as stranger:
        try:
            await stranger.predict(model, {"text": "x"})
        except cc.UnauthorizedError as error:
            out["unauthorized"] = described(error)
    out["retry"] = await async_retried(url, key, model, attempts=6)
    out["no_retry"] = await async_retried(url, key, model, attempts=1)
    return out


async def async_retried(url: str, key: str, model: str, attempts: int) -> Any:
    """As ``retried``, with AsyncClient."""
    async with cc.AsyncClient(url, api_key=key) as holder:
        slow = asyncio.create_task(holder.predict(model, {"text": "slow", "seconds": 3}))
        await asyncio.sleep(1.0)
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            await asyncio.sleep(seconds)

        async with cc.AsyncClient(
            url, api_key=key, retry=cc.RetryPolicy(attempts=attempts), sleep=sleep
        ) as c:
            try:
                return {"result": await c.predict(model, {"text": "fast"}), "sleeps": sleeps}
            except cc.OverloadedError as error:
                return [*described(error), error.retry_after]
            finally:
                await slow


def main() -> None:
    url, key, model = sys.argv[1:4]
    report = {
        "sync": sync_calls(url, key, model),
        "async": asyncio.run(async_calls(url, key, model)),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
