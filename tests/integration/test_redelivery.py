"""A worker killed mid-task: the task is redelivered to another worker and completes once."""

from collections.abc import Iterator

import pytest
import redis

from tests.integration.stack import REDIS_URL, SLOW_MODEL, Stack, wait_until


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="600") as stack:
        yield stack


def test_killed_worker_task_completes_once(stack: Stack) -> None:
    model = stack.model_name("slow")
    prefix = f"test:{stack.id}:slow:"
    env = {"SLOW_MODEL_COUNTER_PREFIX": prefix, "WORKER_PREFETCH": "1"}
    counters = redis.Redis.from_url(REDIS_URL)
    try:
        doomed = stack.start_worker(SLOW_MODEL, model, **env)
        submitted = stack.http.post(f"/predict/{model}?mode=async", json={"data": "k:4"})
        assert submitted.status_code == 202, submitted.text
        task_id = submitted.json()["task_id"]
        wait_until(lambda: counters.get(f"{prefix}k:started") == b"1", 60.0, what="task started")
        doomed.signal(9)
        doomed.process.wait(30)
        assert stack.http.get(f"/tasks/{task_id}").json()["status"] == "pending"

        survivor = stack.start_worker(SLOW_MODEL, model, **env)

        def done() -> dict[str, object] | None:
            status = stack.http.get(f"/tasks/{task_id}").json()
            return status if status["status"] != "pending" else None

        status = wait_until(done, 90.0, interval=0.3, what="redelivered task done")
        assert status["status"] == "done"
        assert status["result"] == {"reply": f"pid={survivor.pid} tag=k"}
        assert counters.get(f"{prefix}k:started") == b"2"
        assert counters.get(f"{prefix}k:finished") == b"1"
    finally:
        counters.close()
