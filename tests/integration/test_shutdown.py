"""SIGTERM: the worker finishes the task in flight, deregisters and exits 0."""

import signal
from collections.abc import Iterator

import pytest
import redis

from tests.integration.stack import REDIS_URL, SLOW_MODEL, Stack, wait_until


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="600") as stack:
        yield stack


def test_sigterm_drains_and_deregisters(stack: Stack) -> None:
    model = stack.model_name("slow")
    prefix = f"test:{stack.id}:slow:"
    counters = redis.Redis.from_url(REDIS_URL)
    try:
        worker = stack.start_worker(SLOW_MODEL, model, SLOW_MODEL_COUNTER_PREFIX=prefix)
        submitted = stack.http.post(f"/predict/{model}?mode=async", json={"data": "d:2"})
        task_id = submitted.json()["task_id"]
        wait_until(lambda: counters.get(f"{prefix}d:started") == b"1", 60.0, what="started")
        worker.signal(signal.SIGTERM)
        assert worker.process.wait(60) == 0, worker.log()
        status = stack.http.get(f"/tasks/{task_id}").json()
        assert status["status"] == "done"
        assert stack.instances(model) == 0
    finally:
        counters.close()


def test_sigterm_exits_within_a_stop_grace_period_when_the_registry_hangs() -> None:
    """Compose and Kubernetes kill a container 10 s after SIGTERM by default; a worker must be
    gone by then even when the registry it deregisters from does not answer."""
    with Stack(RESULT_TTL="600") as own:
        worker = own.start_worker("models.model_a", own.model_name("a"))
        own.registry.signal(signal.SIGSTOP)
        try:
            worker.signal(signal.SIGTERM)
            assert worker.process.wait(10) == 0, worker.log()
        finally:
            own.registry.signal(signal.SIGCONT)
