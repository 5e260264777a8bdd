"""Streamed responses over Server-Sent Events, against real processes and brokers: a worker that
streams by the wire protocol alone (``stream_worker.py``), the gateway, and a second gateway.

A synchronous stream comes in order and ends with ``done``; a client that goes away mid-stream
makes the gateway set the task's stop key, and the worker stops at its next piece; an
asynchronous streamed task is followed on another gateway and resumed there with
``Last-Event-ID``, getting exactly the pieces left; a run that starts again passes its
``restart`` through; errors before the first piece are the usual JSON answers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from conveyor.protocol import stop_key
from tests.gateways.second import second_gateway
from tests.integration.sse import Event, read_events
from tests.integration.stack import Stack, wait_until

WORKER = "tests.integration.stream_worker"


@pytest.fixture(scope="module")
def model(stack: Stack) -> str:
    name = stack.model_name("streams")
    stack.start_worker(WORKER, name, STREAM_WORKER_PREFIX=f"test:{stack.id}:stream:")
    return name


@pytest.fixture(scope="module")
def other(stack: Stack) -> Iterator[str]:
    """A second gateway's URL."""
    with second_gateway(stack) as (url, _):
        yield url


def replies(events: list[Event]) -> list[str]:
    return [data["reply"] for _, kind, data in events if kind == "message"]


def test_a_sync_stream_comes_in_order_with_ids_then_done(stack: Stack, model: str) -> None:
    events = read_events(
        stack.api_url, "POST", f"/predict/{model}?stream=true", body={"data": "5:0.02"}
    )
    assert [kind for _, kind, _ in events] == ["message"] * 5 + ["done"]
    assert replies(events) == [f"w{i} " for i in range(5)]
    ids = [str(event_id) for event_id, kind, _ in events if kind == "message"]
    assert all(ids) and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert events[-1][2] == {"reply": "w0 w1 w2 w3 w4 "}  # the pieces combined
    # Accept: text/event-stream asks for the same; without either, the usual JSON answer.
    accepted = read_events(
        stack.api_url, "POST", f"/predict/{model}", body={"data": "2:0"},
        headers={"Accept": "text/event-stream"},
    )  # fmt: skip
    assert replies(accepted) == ["w0 ", "w1 "]
    plain = stack.http.post(f"/predict/{model}", json={"data": "3:0"})
    assert plain.status_code == 200 and plain.json() == {"reply": "w0 w1 w2 "}


def test_errors_before_the_first_piece_are_the_usual_json_answers(stack: Stack, model: str) -> None:
    unknown = stack.http.post("/predict/no_such_model?stream=true", json={"data": "1:0"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    bad = stack.http.post(f"/predict/{model}?stream=true", json={"nope": 1})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    flag = stack.http.post(f"/predict/{model}?stream=maybe", json={"data": "1:0"})
    assert flag.status_code == 422 and flag.json()["error"]["field"] == "stream"
    task = stack.http.get("/tasks/0123456789abcdef/stream")
    assert task.status_code == 404 and task.json()["error"]["code"] == "task_not_found"
    accepted = stack.http.post(f"/predict/{model}?mode=async&stream=true", json={"data": "1:0"})
    task_id = accepted.json()["task_id"]
    resumed = stack.http.get(f"/tasks/{task_id}/stream", headers={"Last-Event-ID": "x"})
    assert resumed.status_code == 422 and resumed.json()["error"]["field"] == "Last-Event-ID"


def test_a_client_that_goes_away_stops_the_generation(stack: Stack, model: str) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    stopped_key = f"test:{stack.id}:stream:stopped"
    before = client.llen(stopped_key)
    events = read_events(
        stack.api_url, "POST", f"/predict/{model}?stream=true", body={"data": "100:0.05"},
        limit=3,
    )  # fmt: skip
    assert replies(events) == ["w0 ", "w1 ", "w2 "]
    wait_until(lambda: client.llen(stopped_key) > before, 10.0, what="the worker stopped")
    last = client.lindex(stopped_key, -1)
    assert isinstance(last, bytes)
    task_id, index = last.decode().rsplit(":", 1)
    assert int(index) <= 6  # the next piece after the gateway set the key (or the one after)
    assert client.exists(stop_key(task_id))
    cancelled = stack.http.get("/metrics").text
    assert f'conveyor_streams_cancelled_total{{model="{model}",version="1"}} 1.0' in cancelled
    client.close()


def test_a_client_that_goes_away_before_the_first_piece_stops_it_too(
    stack: Stack, model: str
) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    stopped_key = f"test:{stack.id}:stream:stopped"
    before = client.llen(stopped_key)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{stack.api_url}/predict/{model}?stream=true",
            json={"data": "20:0.05:late"},
            timeout=httpx.Timeout(5.0, read=0.3),
        )
    wait_until(lambda: client.llen(stopped_key) > before, 10.0, what="the worker stopped")
    last = client.lindex(stopped_key, -1)
    assert isinstance(last, bytes) and last.decode().endswith(":0")  # at its first piece
    client.close()


def test_an_async_stream_is_followed_and_resumed_on_another_gateway(
    stack: Stack, model: str, other: str
) -> None:
    accepted = stack.http.post(f"/predict/{model}?mode=async&stream=true", json={"data": "8:0.1"})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    task_id = body["task_id"]
    assert body["stream_url"] == f"/tasks/{task_id}/stream"
    # Two pieces, then the reader goes away; it resumes on the other gateway after the second.
    first = read_events(stack.api_url, "GET", body["stream_url"], limit=2)
    assert replies(first) == ["w0 ", "w1 "]
    rest = read_events(
        other, "GET", body["stream_url"], headers={"Last-Event-ID": str(first[-1][0])}
    )
    assert replies(rest) == [f"w{i} " for i in range(2, 8)]  # exactly what was left
    assert rest[-1][1] == "done"
    state = rest[-1][2]
    assert state["status"] == "done" and state["result"] == {
        "reply": "".join(f"w{i} " for i in range(8))
    }
    # Once ended, a read from the start replays it all, on either gateway.
    again = read_events(other, "GET", body["stream_url"])
    assert replies(again) == [f"w{i} " for i in range(8)]
    assert [e[0] for e in again[:2]] == [e[0] for e in first]
    # After the last piece: the end alone.
    last = read_events(
        stack.api_url, "GET", body["stream_url"], headers={"Last-Event-ID": str(again[-2][0])}
    )
    assert [kind for _, kind, _ in last] == ["done"]


def test_a_restart_passes_through_and_the_new_run_streams_from_its_start(
    stack: Stack, model: str
) -> None:
    events = read_events(
        stack.api_url, "POST", f"/predict/{model}?stream=true", body={"data": "4:0.01:restart"}
    )
    kinds = [kind for _, kind, _ in events]
    assert kinds == ["message", "message", "restart"] + ["message"] * 4 + ["done"]
    assert events[2][2] == {"attempt": 2} and events[2][0]
    assert replies(events) == ["w0 ", "w1 ", "w0 ", "w1 ", "w2 ", "w3 "]
    assert events[-1][2] == {"reply": "w0 w1 w2 w3 "}


def test_a_task_that_streamed_nothing_ends_with_its_state(stack: Stack, model: str) -> None:
    accepted = stack.http.post(f"/predict/{model}?mode=async", json={"data": "2:0"})
    task_id = accepted.json()["task_id"]
    assert "stream_url" not in accepted.json()
    deadline = time.monotonic() + 10
    while stack.http.get(f"/tasks/{task_id}").json()["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    events = read_events(stack.api_url, "GET", f"/tasks/{task_id}/stream")
    assert [kind for _, kind, _ in events] == ["done"]
    assert events[0][2]["result"] == {"reply": "w0 w1 "}
