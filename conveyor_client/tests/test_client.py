"""Client and AsyncClient against httpx's MockTransport: what they send, raise and retry."""

import json
from collections.abc import Callable

import httpx
import pytest

from conveyor_client import (
    AsyncClient,
    Client,
    ConflictError,
    Done,
    InvalidRequestError,
    ModelError,
    NotFoundError,
    OverloadedError,
    Piece,
    Restart,
    RetryPolicy,
    TimeoutError,
    UnauthorizedError,
    UnavailableError,
)

Handler = Callable[[httpx.Request], httpx.Response]


def error(
    status: int, code: str, headers: dict[str, str] | None = None, **extra: str
) -> httpx.Response:
    body = {
        "error": {"code": code, "message": f"{code} happened", "model": "m", "field": None, **extra}
    }
    return httpx.Response(status, json=body, headers=headers)


def client(handler: Handler, sleeps: list[float] | None = None, **kwargs: object) -> Client:
    slept = sleeps if sleeps is not None else []
    return Client(
        "http://gw",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        **kwargs,  # type: ignore[arg-type]
    )


def test_predict_sends_the_body_version_timeout_and_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"reply": "ok"})

    with client(handler, api_key="k1") as c:
        assert c.predict("model_a", {"data": "x"}, version="2", timeout=5) == {"reply": "ok"}
    (request,) = seen
    assert request.method == "POST"
    assert request.url.path == "/predict/model_a"
    assert dict(request.url.params) == {"version": "2", "timeout": "5"}
    assert request.headers["authorization"] == "Bearer k1"
    assert json.loads(request.content) == {"data": "x"}


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (422, "invalid_request", InvalidRequestError),
        (422, "invalid_argument", InvalidRequestError),
        (401, "unauthorized", UnauthorizedError),
        (404, "model_not_found", NotFoundError),
        (409, "task_conflict", ConflictError),
        (500, "model_error", ModelError),
        (502, "bad_result", ModelError),
        (504, "timeout", TimeoutError),
        (418, "teapot", None),
    ],
)
def test_errors_are_typed(status: int, code: str, cls: type | None) -> None:
    with (
        client(lambda r: error(status, code, field="data", task_id="t1")) as c,
        pytest.raises(Exception) as raised,
    ):
        c.predict("m", {})
    from conveyor_client import ConveyorError

    assert isinstance(raised.value, cls or ConveyorError)
    err = raised.value
    assert isinstance(err, ConveyorError)
    assert (err.status, err.code, err.message) == (status, code, f"{code} happened")
    assert (err.model, err.field, err.task_id) == ("m", "data", "t1")


def test_a_non_json_error_keeps_its_status() -> None:
    with (
        client(lambda r: httpx.Response(502, text="bad gateway")) as c,
        pytest.raises(ModelError) as raised,
    ):
        c.predict("m", {})
    assert raised.value.code == "http_502"
    assert "bad gateway" in raised.value.message


def test_429_is_retried_after_retry_after() -> None:
    answers = [error(429, "overloaded", {"Retry-After": "2"}), httpx.Response(200, json={"a": 1})]
    sleeps: list[float] = []
    with client(lambda r: answers.pop(0), sleeps) as c:
        assert c.predict("m", {}) == {"a": 1}
    assert sleeps == [2.0]


def test_retries_are_bounded() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(503, "model_unavailable", {"Retry-After": "1"})

    sleeps: list[float] = []
    with (
        client(handler, sleeps, retry=RetryPolicy(attempts=3, max_wait=0.5)) as c,
        pytest.raises(UnavailableError) as raised,
    ):
        c.predict("m", {})
    assert len(calls) == 3
    assert sleeps == [0.5, 0.5]
    assert raised.value.retry_after == 1.0


def test_other_errors_are_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(422, "invalid_request")

    with client(handler) as c, pytest.raises(InvalidRequestError):
        c.predict("m", {})
    assert len(calls) == 1


def test_submit_status_wait_cancel() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(202, json={"task_id": "t1", "status": "pending"})
        if request.method == "DELETE":
            return httpx.Response(200, json={"task_id": "t1", "status": "cancelled"})
        if "wait" in request.url.params:
            return httpx.Response(200, json={"task_id": "t1", "status": "done", "result": {"r": 1}})
        return httpx.Response(200, json={"task_id": "t1", "status": "pending"})

    with client(handler) as c:
        assert c.submit("m", {"x": 1}, idempotency_key="k") == "t1"
        assert c.status("t1").status == "pending"
        task = c.wait("t1", timeout=3)
        assert (task.status, task.result, task.finished) == ("done", {"r": 1}, True)
        assert c.cancel("t1").status == "cancelled"
    submit, status, wait, cancel = seen
    assert dict(submit.url.params) == {"mode": "async"}
    assert submit.headers["idempotency-key"] == "k"
    assert status.url.path == "/tasks/t1"
    assert float(wait.url.params["wait"]) == pytest.approx(3, abs=0.1)
    assert cancel.method == "DELETE"


def test_wait_returns_the_pending_task_at_its_timeout() -> None:
    with client(lambda r: httpx.Response(200, json={"task_id": "t", "status": "pending"})) as c:
        assert c.wait("t", timeout=0).status == "pending"


STREAM = (
    ": keep-alive\n\n"
    'id: 1-0\ndata: {"reply": "a"}\n\n'
    'event: restart\nid: 2-0\ndata: {"attempt": 2}\n\n'
    'id: 3-0\ndata: {"reply": "b"}\n\n'
    'event: done\ndata: {"reply": "b"}\n\n'
)


def test_stream_yields_pieces_restarts_and_done() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["stream"] == "true"
        return httpx.Response(200, text=STREAM, headers={"Content-Type": "text/event-stream"})

    with client(handler) as c:
        events = list(c.stream("m", {"data": "x"}))
    assert events == [
        Piece({"reply": "a"}, "1-0"),
        Restart(2, "2-0"),
        Piece({"reply": "b"}, "3-0"),
        Done({"reply": "b"}),
    ]


def test_a_stream_error_event_is_raised() -> None:
    text = (
        'id: 1-0\ndata: {"r": 1}\n\n'
        'event: error\ndata: {"error": {"code": "model_error", "message": "boom"}}\n\n'
    )
    with client(lambda r: httpx.Response(200, text=text)) as c:
        events = c.stream("m", {})
        assert next(events) == Piece({"r": 1}, "1-0")
        with pytest.raises(ModelError, match="boom"):
            next(events)


def test_a_stream_refused_with_429_is_retried() -> None:
    answers = [error(429, "overloaded", {"Retry-After": "1"}), httpx.Response(200, text=STREAM)]
    sleeps: list[float] = []
    with client(lambda r: answers.pop(0), sleeps) as c:
        assert list(c.stream("m", {}))[-1] == Done({"reply": "b"})
    assert sleeps == [1.0]


@pytest.mark.asyncio
async def test_async_client_calls_and_retries() -> None:
    answers = [
        error(429, "overloaded", {"Retry-After": "0"}),
        httpx.Response(200, json={"reply": "ok"}),
        httpx.Response(202, json={"task_id": "t1", "status": "pending"}),
        httpx.Response(200, json={"task_id": "t1", "status": "done", "result": {"reply": "y"}}),
        error(409, "task_conflict", task_id="t1"),
        httpx.Response(200, text=STREAM),
        error(404, "task_not_found"),
    ]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with AsyncClient(
        "http://gw",
        api_key="k",
        transport=httpx.MockTransport(lambda r: answers.pop(0)),
        sleep=sleep,
    ) as c:
        assert await c.predict("m", {}) == {"reply": "ok"}
        assert sleeps == [0.0]
        task_id = await c.submit("m", {})
        assert (await c.wait(task_id, 5)).result == {"reply": "y"}
        with pytest.raises(ConflictError) as conflict:
            await c.cancel(task_id)
        assert conflict.value.task_id == "t1"
        events = [event async for event in c.stream("m", {})]
        assert events[1] == Restart(2, "2-0") and events[-1] == Done({"reply": "b"})
        with pytest.raises(NotFoundError):
            await c.status("nope")
    assert isinstance(OverloadedError("x", status=429, code="overloaded"), Exception)
