"""The result backend's batched store over a real Redis: one round trip per batch, the first
stored result wins and is announced, and a script Redis does not know is loaded again."""

from __future__ import annotations

import os
import uuid

import pytest
import redis.asyncio as aioredis

from conveyor.results import ResultBackend
from proto import task_pb2


def _item(channel: str) -> tuple[task_pb2.Task, task_pb2.TaskResult]:
    task_id = uuid.uuid4().hex
    task = task_pb2.Task(
        task_id=task_id, result_key=f"conveyor:test:result:{task_id}", reply_channel=channel
    )
    return task, task_pb2.TaskResult(task_id=task_id, response=b"answer")


@pytest.mark.asyncio
async def test_store_many_stores_once_announces_and_survives_an_unknown_script() -> None:
    client = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    backend = ResultBackend(client)
    channel = f"conveyor:test:reply:{uuid.uuid4().hex}"
    items = [_item(channel), _item(channel)]
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel)
        backend._store_sha = "0" * 40  # a script Redis does not hold (as after a restart)
        assert await backend.store_many(items, ttl=60) == [True, True]
        again = task_pb2.TaskResult(task_id=items[0][0].task_id, response=b"second")
        assert await backend.store_many([(items[0][0], again)], ttl=60) == [False]
        raw = await client.get(items[0][0].result_key)
        assert isinstance(raw, bytes)
        stored = task_pb2.TaskResult.FromString(raw)
        assert stored.response == b"answer"  # the first one won
        announced: list[bytes] = []
        for _ in range(20):  # None also stands for the (ignored) subscription confirmation
            message = await pubsub.get_message(timeout=0.25)
            if message is not None:
                announced.append(task_pb2.TaskResult.FromString(message["data"]).response)
            if len(announced) == 3:
                break
        assert announced == [b"answer", b"answer", b"answer"]  # the stored one, each time
        assert 0 < await client.ttl(items[1][0].result_key) <= 60
    finally:
        await pubsub.aclose()
        await client.delete(*(task.result_key for task, _ in items))
        await client.aclose()
