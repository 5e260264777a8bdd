"""Cancelling tasks on a real stack: a queued task never runs; a running or finished one is 409.

The slow test model (tests/integration/slow_model.py) counts in Redis each run it starts, so
the test sees that a cancelled task was never run, not only that it reads ``cancelled``.
"""

from __future__ import annotations

import os

import redis

from tests.faults.brokers import Brokers
from tests.integration.stack import SLOW_MODEL, Stack, wait_until


def _submit(stack: Stack, model: str, data: str) -> str:
    response = stack.http.post(f"/predict/{model}", params={"mode": "async"}, json={"data": data})
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def _status(stack: Stack, task_id: str) -> str:
    response = stack.http.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def test_cancel_queued_running_finished(brokers: Brokers) -> None:
    with Stack(RESULT_TTL="600") as stack:
        model = stack.model_name("slow")
        prefix = f"test:{stack.id}:slow:"
        counters = redis.Redis.from_url(os.environ["REDIS_URL"])

        def started(tag: str) -> int:
            return int(counters.get(f"{prefix}{tag}:started") or 0)

        env = {"SLOW_MODEL_COUNTER_PREFIX": prefix, "WORKER_CONCURRENCY": "1"}
        worker = stack.start_worker(SLOW_MODEL, model, **env)
        worker.stop()  # the queues stay; tasks wait in them for the next worker

        queued = _submit(stack, model, "queued:0")
        cancelled = stack.http.delete(f"/tasks/{queued}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["error"]["code"] == "cancelled"
        again = stack.http.delete(f"/tasks/{queued}")
        assert again.status_code == 200 and again.json()["status"] == "cancelled", again.text

        behind = _submit(stack, model, "behind:0")
        stack.start_worker(SLOW_MODEL, model, **env)
        wait_until(lambda: _status(stack, behind) == "done", 60, what="the task behind it done")
        assert _status(stack, queued) == "cancelled"
        assert started("queued") == 0, "the worker ran a cancelled task"

        running = _submit(stack, model, "running:3")
        wait_until(lambda: started("running") == 1, 30, what="the slow task started")
        refused = stack.http.delete(f"/tasks/{running}")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "task_conflict"
        assert refused.json()["error"]["status"] == "running"

        wait_until(lambda: _status(stack, running) == "done", 30, what="the slow task done")
        finished = stack.http.delete(f"/tasks/{running}")
        assert finished.status_code == 409, finished.text
        assert finished.json()["error"]["status"] == "done"

        unknown = stack.http.delete("/tasks/0123456789abcdef")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "task_not_found"
        counters.close()
