"""The edge's in-flight bound: past it, an immediate JSON 429 with Retry-After."""

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest

from api.edge import Admission, Edge
from conveyor.metrics import GatewayMetrics


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": []}


async def _call(edge: Edge, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await edge(_scope(path), receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/predict/m", "/v2/models/m/infer"])
async def test_past_the_bound_a_json_429_with_retry_after_at_once(path: str) -> None:
    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    admission = Admission(1, retry_after=3)
    edge = Edge(slow_app, admission=admission, max_body_bytes=1024)
    first = asyncio.create_task(_call(edge, path))
    await asyncio.sleep(0)
    assert admission.inflight == 1
    status, headers, body = await asyncio.wait_for(_call(edge, path), 1.0)
    assert status == 429
    assert headers[b"retry-after"] == b"3"
    assert headers[b"content-type"] == b"application/json"
    assert b"x-request-id" in headers
    error = json.loads(body)["error"]
    if path.startswith("/v2"):
        assert "limit of 1 requests" in error
    else:
        assert error["code"] == "overloaded"
    # The refusals are sent again and again: they must stay intact.
    assert (await asyncio.wait_for(_call(edge, path), 1.0))[0] == 429
    release.set()
    assert (await first)[0] == 200
    assert admission.inflight == 0


@pytest.mark.asyncio
async def test_a_refusal_echoes_the_request_id_is_counted_and_health_is_never_refused() -> None:
    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] != "/healthz":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    metrics = GatewayMetrics()
    admission = Admission(1, metrics=metrics)
    edge = Edge(slow_app, admission=admission, max_body_bytes=1024, metrics=metrics)
    first = asyncio.create_task(_call(edge, "/predict/m"))
    await asyncio.sleep(0)
    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    scope = {**_scope("/predict/m"), "headers": [(b"x-request-id", b"client-42")]}
    await edge(scope, receive, send)
    assert sent[0]["status"] == 429
    assert dict(sent[0]["headers"])[b"x-request-id"] == b"client-42"
    series = metrics.series("predict")
    assert series.rejected == {"gateway_full": 1}
    assert (await _call(edge, "/healthz"))[0] == 200  # health stays open at the bound
    release.set()
    await first


@pytest.mark.asyncio
async def test_a_reservation_counts_against_the_bound_and_becomes_the_requests_place() -> None:
    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    admission = Admission(2)
    edge = Edge(slow_app, admission=admission, max_body_bytes=1024)
    scopes = [_scope("/predict/m") for _ in range(2)]
    for scope in scopes:  # admitted by the protocol in one turn of the loop
        assert not admission.sheds("/predict/m")
        admission.reserve(scope)
    assert admission.sheds("/predict/m")  # the reservations fill the bound...
    assert not admission.sheds("/healthz")  # ...which health is not under
    assert (await _call(edge, "/predict/m"))[0] == 429  # one that was not admitted

    async def run(scope: dict[str, Any]) -> int:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        await edge(scope, receive, send)
        return int(sent[0]["status"])

    admitted = [asyncio.create_task(run(scope)) for scope in scopes]
    await asyncio.sleep(0)
    assert (admission.reserved, admission.inflight) == (0, 2)  # not refused, and not counted twice
    release.set()
    assert await asyncio.gather(*admitted) == [200, 200]
    assert (admission.reserved, admission.inflight) == (0, 0)
