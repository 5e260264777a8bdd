"""Synchronous tasks that reach the gateway together travel in one message (``TaskBatch``) to
workers that announce they unpack it, and each is answered on its own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from conveyor.protocol import TASK_BATCH_FEATURE
from tests.integration.stack import Stack, free_port

CLIENTS = 48
ROUNDS = 6


class Packing(Stack):
    """A stack with one model_a worker whose metrics port is known."""

    model: str
    metrics_url: str


@pytest.fixture(scope="module")
def stack() -> Iterator[Packing]:
    with Packing() as stack:
        stack.model = stack.model_name("model_a")
        port = free_port()
        stack.metrics_url = f"http://127.0.0.1:{port}/metrics"
        stack.start_worker("models.model_a", stack.model, METRICS_PORT=str(port))
        yield stack


def _tasks_per_message(stack: Packing) -> tuple[float, float]:
    """The worker's (messages, tasks) so far, from its ``conveyor_tasks_per_message``."""
    text = httpx.get(stack.metrics_url, timeout=10.0).text
    values = {}
    for kind in ("count", "sum"):
        found = re.search(rf"^conveyor_tasks_per_message_{kind}\{{[^}}]*\}} (\S+)$", text, re.M)
        values[kind] = float(found.group(1)) if found else 0.0
    return values["count"], values["sum"]


async def _burst(stack: Packing, round_: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=stack.api_url, timeout=60.0, limits=httpx.Limits(max_connections=CLIENTS)
    ) as client:
        return await asyncio.gather(
            *(
                client.post(f"/predict/{stack.model}", json={"data": f"r{round_}-{i}"})
                for i in range(CLIENTS)
            )
        )


def test_the_worker_announces_it_unpacks_task_batches(stack: Packing) -> None:
    detail = httpx.get(f"{stack.registry_url}/models/{stack.model}", timeout=10.0).json()
    assert detail["features"] == [TASK_BATCH_FEATURE]


def test_concurrent_sync_requests_share_messages_and_each_gets_its_own_answer(
    stack: Packing,
) -> None:
    packed = False
    for round_ in range(ROUNDS):
        responses = asyncio.run(_burst(stack, round_))
        for i, response in enumerate(responses):
            assert response.status_code == 200, response.text
            assert response.json()["reply"] == f"Processed message: r{round_}-{i}"  # its own
        messages, tasks = _tasks_per_message(stack)
        if tasks > messages:  # some message carried more than one task
            packed = True
            break
    assert packed, f"{ROUNDS} bursts of {CLIENTS} requests never shared a message"
    assert tasks == CLIENTS * (round_ + 1)  # every task delivered once, none lost or doubled
