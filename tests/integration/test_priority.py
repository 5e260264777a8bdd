"""A high-priority task overtakes a backlog, in the durable (async) lane and the sync lane, through
``/predict``'s ``priority`` and the v2 protocol's ``parameters.priority``."""

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.integration.stack import SLOW_MODEL, Stack, wait_until

BACKLOG = 12
"""Low-priority tasks queued behind the one the worker is busy with."""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(RESULT_TTL="600") as stack:
        yield stack


def start_slow_worker(stack: Stack) -> tuple[str, str]:
    """A slow-model worker running one task at a time; returns its model name and counter prefix."""
    model = stack.model_name("prio")
    prefix = f"test:{stack.id}:slow:{model}:"
    stack.start_worker(SLOW_MODEL, model, WORKER_CONCURRENCY="1", SLOW_MODEL_COUNTER_PREFIX=prefix)
    return model, prefix


def finish_order(prefix: str, count: int) -> list[str]:
    """Wait until ``count`` runs finished; return their tags in the order they finished."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        key = f"{prefix}order"
        wait_until(lambda: client.llen(key) >= count, 60.0, what=f"{count} runs finished")
        return [str(tag) for tag in client.lrange(key, 0, -1)]
    finally:
        client.close()


def overtaken(order: list[str]) -> int:
    """How many backlog tasks finished after the high-priority one."""
    return sum(1 for tag in order[order.index("high") + 1 :] if tag.startswith("low"))


def test_async_high_priority_overtakes_backlog(stack: Stack) -> None:
    model, prefix = start_slow_worker(stack)

    def submit(tag: str, seconds: float, priority: int) -> None:
        response = stack.http.post(
            f"/predict/{model}?mode=async&priority={priority}",
            json={"data": f"{tag}:{seconds}"},
        )
        assert response.status_code == 202, response.text

    submit("block", 1.5, 0)
    for i in range(BACKLOG):
        submit(f"low{i}", 0.1, 0)
    submit("high", 0.1, 9)

    order = finish_order(prefix, BACKLOG + 2)
    # The worker holds a few deliveries ahead (prefetch); everything else queued before the
    # high-priority task must finish after it.
    assert overtaken(order) >= BACKLOG - 4, order


def test_sync_high_priority_overtakes_backlog(stack: Stack) -> None:
    """The backlog comes through ``/predict``, the urgent call through the v2 ``infer`` with
    Triton's meanings: priority 1 is the highest, the timeout in microseconds."""
    model, prefix = start_slow_worker(stack)

    def call(tag: str, seconds: float, urgent: bool) -> int:
        if not urgent:
            response = stack.http.post(
                f"/predict/{model}?timeout=60", json={"data": f"{tag}:{seconds}"}
            )
        else:
            response = stack.http.post(
                f"/v2/models/{model}/infer",
                json={
                    "parameters": {"priority": 1, "timeout": 60_000_000},
                    "inputs": [
                        {
                            "name": "data",
                            "shape": [1],
                            "datatype": "BYTES",
                            "data": [f"{tag}:{seconds}"],
                        }
                    ],
                },
            )
        return response.status_code

    with ThreadPoolExecutor(max_workers=BACKLOG + 2) as pool:
        calls = [pool.submit(call, "block", 1.5, False)]
        time.sleep(0.3)
        calls += [pool.submit(call, f"low{i}", 0.1, False) for i in range(BACKLOG)]
        time.sleep(0.5)
        calls.append(pool.submit(call, "high", 0.1, True))
        statuses = [c.result(timeout=90) for c in calls]
    assert statuses == [200] * (BACKLOG + 2)

    order = finish_order(prefix, BACKLOG + 2)
    assert overtaken(order) >= BACKLOG - 4, order
