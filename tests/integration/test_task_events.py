"""Following asynchronous tasks without polling: ``GET /tasks/{id}`` shows where a pending task
stands, ``?wait=`` answers once it ends, ``GET /tasks/{id}/events`` streams its life as
Server-Sent Events (resumable with ``Last-Event-ID``), and positions fall as the queue drains."""

import os
import time
from typing import Any

import pytest
import redis

from proto import task_pb2
from tests.integration import sse
from tests.integration.stack import SLOW_MODEL, Stack, wait_until


@pytest.fixture(scope="module")
def model(stack: Stack) -> str:
    """A slow model served by one worker running one task at a time."""
    name = stack.model_name("follow")
    prefix = f"test:{stack.id}:slow:{name}:"
    stack.start_worker(SLOW_MODEL, name, WORKER_CONCURRENCY="1", SLOW_MODEL_COUNTER_PREFIX=prefix)
    return name


def submit(stack: Stack, model: str, tag: str, seconds: float) -> str:
    response = stack.http.post(f"/predict/{model}?mode=async", json={"data": f"{tag}:{seconds}"})
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def read_events(
    stack: Stack, task_id: str, last_event_id: str | None = None
) -> list[tuple[str | None, str, dict[str, Any]]]:
    """Every SSE event of the task until the stream closes: (id, event, data)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return sse.read_events(stack.api_url, "GET", f"/tasks/{task_id}/events", headers=headers)


def test_events_show_positions_falling_then_started_progress_done(stack: Stack, model: str) -> None:
    blockers = [submit(stack, model, f"block{i}", 0.6) for i in range(4)]
    last = submit(stack, model, "last", 0.4)
    queued = stack.http.get(f"/tasks/{last}").json()
    assert queued["status"] == "pending"
    assert queued["stage"] == "queued"
    assert 3 <= queued["position"] <= 4, queued

    events = read_events(stack, last)
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "queued", kinds
    assert kinds[-3:] == ["started", "progress", "done"], kinds
    positions = [data["position"] for _, kind, data in events if kind in ("queued", "position")]
    assert positions == sorted(positions, reverse=True), positions
    assert positions[0] >= 3 and positions[-1] == 0, positions
    assert len(set(positions)) >= 3, positions  # it fell step by step, as the queue drained
    progress = next(data for _, kind, data in events if kind == "progress")
    assert progress["fraction"] == 0.5 and progress["message"] == "halfway"
    final = events[-1][2]
    assert final["status"] == "done" and final["result"]["reply"].endswith("tag=last")
    assert all(event_id for event_id, kind, _ in events if kind != "position")
    # A queued task that had to wait got an estimate once the version's rate was measured.
    assert any("estimated_start_unix_ms" in data for _, kind, data in events if kind == "position")
    for task_id in blockers:
        assert stack.http.get(f"/tasks/{task_id}?wait=10").json()["status"] == "done"


def test_last_event_id_resumes_without_loss_or_duplicates(stack: Stack, model: str) -> None:
    task_id = submit(stack, model, "resume", 0.3)
    first = read_events(stack, task_id)
    ids = [event_id for event_id, kind, _ in first if kind != "position"]
    started = next(event_id for event_id, kind, _ in first if kind == "started")
    again = read_events(stack, task_id, last_event_id=started)
    assert [kind for _, kind, _ in again] == ["progress", "done"]
    assert [event_id for event_id, _, _ in again] == ids[ids.index(started) + 1 :]
    # After the final event, resuming from it gives nothing more than... the stream closing.
    assert read_events(stack, task_id, last_event_id=ids[-1]) == []


def test_running_task_shows_stage_and_progress(stack: Stack, model: str) -> None:
    task_id = submit(stack, model, "running", 2.0)

    def halfway() -> bool:
        body = stack.http.get(f"/tasks/{task_id}").json()
        return body.get("progress", {}).get("message") == "halfway"

    wait_until(halfway, 20.0, what="the progress report")
    body = stack.http.get(f"/tasks/{task_id}").json()
    assert body["stage"] == "running" and body["progress"]["fraction"] == 0.5
    assert "position" not in body
    assert stack.http.get(f"/tasks/{task_id}?wait=20").json()["status"] == "done"


def test_wait_answers_soon_after_the_result_is_stored(stack: Stack, model: str) -> None:
    lags = []
    redis_client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        for i in range(5):
            task_id = submit(stack, model, f"wait{i}", 0.3)
            response = stack.http.get(f"/tasks/{task_id}?wait=20")
            answered_ms = time.time() * 1000
            assert response.status_code == 200 and response.json()["status"] == "done"
            raw = redis_client.get(f"conveyor:result:{task_id}")
            assert isinstance(raw, bytes)
            finished = task_pb2.TaskResult.FromString(raw).finished_unix_ms
            lags.append(answered_ms - finished)
    finally:
        redis_client.close()
    print(f"?wait= answered {sorted(round(lag, 1) for lag in lags)} ms after the result")
    # The goal is ~50 ms; the bound leaves room for a loaded 2-core machine.
    assert sorted(lags)[len(lags) // 2] < 100, lags


def test_wait_times_out_pending_and_bad_waits_are_422(stack: Stack, model: str) -> None:
    task_id = submit(stack, model, "long", 1.5)
    started = time.monotonic()
    body = stack.http.get(f"/tasks/{task_id}?wait=0.3").json()
    assert body["status"] == "pending" and 0.25 <= time.monotonic() - started < 1.4
    for bad in ("-1", "abc", "100000", "nan"):
        response = stack.http.get(f"/tasks/{task_id}?wait={bad}")
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "wait"
    response = stack.http.get(f"/tasks/{task_id}/events", headers={"Last-Event-ID": "nope"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "Last-Event-ID"
    assert stack.http.get("/tasks/not-a-task/events").status_code == 404
    assert stack.http.get(f"/tasks/{task_id}?wait=20").json()["status"] == "done"


def test_a_cancelled_task_ends_its_stream_with_cancelled(stack: Stack, model: str) -> None:
    blocker = submit(stack, model, "blocker", 1.0)
    victim = submit(stack, model, "victim", 0.1)
    assert stack.http.delete(f"/tasks/{victim}").json()["status"] == "cancelled"
    events = read_events(stack, victim)
    assert [kind for _, kind, _ in events][-1] == "cancelled"
    assert events[-1][2]["error"]["code"] == "cancelled"
    assert stack.http.get(f"/tasks/{blocker}?wait=20").json()["status"] == "done"
