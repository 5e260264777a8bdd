"""Synchronous tasks that reach the gateway together travel in one message (``TaskBatch``) to
workers that announce they unpack it, and each is answered on its own."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import aio_pika
import httpx
import pytest
import redis

from conveyor.protocol import TASK_BATCH_CONTENT_TYPE, TASK_BATCH_FEATURE, result_key, sync_queue
from proto import model_a_pb2, task_pb2
from tests.integration.stack import SLOW_MODEL, Stack, free_port, wait_until

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


PACKED = 6


async def _publish_batch(amqp_url: str, queue: str, tasks: list[task_pb2.Task]) -> None:
    """Publish ``tasks`` as one TaskBatch message, as a gateway packs them."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        body = task_pb2.TaskBatch(tasks=tasks).SerializeToString()
        message = aio_pika.Message(body, content_type=TASK_BATCH_CONTENT_TYPE, delivery_mode=1)
        await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)
    finally:
        await connection.close()


def _seconds(i: int) -> float:
    """How long the slow model runs task ``i``: the third runs long, so the worker is killed
    while it runs, not between its finish and its store (it would then run twice)."""
    return 3.0 if i == 2 else 0.4


def test_a_worker_killed_holding_a_batch_message_loses_none_of_its_tasks(stack: Packing) -> None:
    """Some tasks of the message are stored when the worker dies, the rest are not: the
    message comes back whole, the stored ones are announced again, not run twice."""
    model = stack.model_name("slow")
    prefix = f"test:{stack.id}:slow:"
    env = {"SLOW_MODEL_COUNTER_PREFIX": prefix, "WORKER_CONCURRENCY": "1"}
    counters = redis.Redis.from_url(stack.redis_url)
    try:
        doomed = stack.start_worker(SLOW_MODEL, model, **env)
        version = httpx.get(f"{stack.registry_url}/models/{model}", timeout=10.0).json()["version"]
        deadline = int(time.time() * 1000) + 120_000
        tasks = [
            task_pb2.Task(
                task_id=f"{stack.id}-{i}",
                model=model,
                version=version,
                payload=model_a_pb2.ModelARequest(data=f"p{i}:{_seconds(i)}").SerializeToString(),
                deadline_unix_ms=deadline,
                result_key=result_key(f"{stack.id}-{i}"),
                reply_channel=f"test:{stack.id}:reply",
                result_ttl_seconds=600,
            )
            for i in range(PACKED)
        ]
        asyncio.run(_publish_batch(stack.amqp_url, sync_queue(model, version), tasks))
        # A finished task is stored with the next flush, a moment later: wait for the stores.
        wait_until(
            lambda: all(counters.exists(t.result_key) for t in tasks[:2]),
            60.0,
            what="two tasks stored",
        )
        doomed.signal(9)
        doomed.process.wait(30)
        stored_before = [counters.exists(t.result_key) for t in tasks]
        assert stored_before[:2] == [1, 1] and stored_before[-1] == 0

        survivor = stack.start_worker(SLOW_MODEL, model, **env)

        def all_stored() -> bool:
            return all(counters.exists(t.result_key) for t in tasks)

        wait_until(all_stored, 90.0, interval=0.3, what="every task of the message stored")
        for i, task in enumerate(tasks):
            stored = counters.get(task.result_key)
            assert isinstance(stored, bytes)
            result = task_pb2.TaskResult.FromString(stored)
            reply = model_a_pb2.ModelAResponse.FromString(result.response).reply
            pid = doomed.pid if stored_before[i] else survivor.pid
            assert reply == f"pid={pid} tag=p{i}"
            assert counters.get(f"{prefix}p{i}:finished") == b"1"  # completed once
        assert counters.get(f"{prefix}p0:started") == b"1"  # stored: not run again
    finally:
        counters.close()
