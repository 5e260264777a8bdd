"""The result backend's batched store over a real Redis: one round trip per batch, the first
stored result wins and is announced, a script Redis does not know is loaded again, and
``WAIT`` follows the replicas that are connected."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from conveyor import results
from conveyor.results import ResultBackend
from proto import task_pb2
from tools.stack.brokers import Broker, start_local


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


@pytest.mark.asyncio
async def test_a_lone_result_goes_as_one_command_and_survives_an_unknown_script() -> None:
    client = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    backend = ResultBackend(client)
    task, result = _item(f"conveyor:test:reply:{uuid.uuid4().hex}")
    try:
        await client.script_flush()  # as after a restart of Redis
        assert await backend.store_many([(task, result)], ttl=60) == [True]
        assert await backend.store_many([(task, result)], ttl=60) == [False]
        assert await client.get(task.result_key) == result.SerializeToString()
    finally:
        await client.delete(task.result_key)
        await client.aclose()


async def _wait_calls(client: aioredis.Redis) -> int:
    """How many ``WAIT`` commands the server has run."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


@pytest.mark.asyncio
async def test_auto_waits_for_a_replica_only_while_one_is_connected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``replicas="auto"``: no ``WAIT`` without a replica (it would block for its timeout);
    once a replica connects, each store waits for it, and the replica holds the result the
    moment ``store_many`` returns."""
    monkeypatch.setattr(results, "REPLICAS_CHECK_SECONDS", 0.0)
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = aioredis.Redis.from_url(url)
    backend = ResultBackend(client)
    items = [_item("")]
    replica: Broker | None = None
    try:
        before = await _wait_calls(client)
        assert await backend.store_many(items, ttl=60, replicas="auto", wait_ms=5000) == [True]
        assert await _wait_calls(client) == before  # no replica: no WAIT

        primary = urlsplit(url)
        replica = start_local(
            "redis",
            tmp_path,
            redis_args=("--replicaof", primary.hostname or "127.0.0.1", str(primary.port or 6379)),
        )
        replica_client = aioredis.Redis.from_url(replica.url)

        async def synced() -> bool:
            info = await replica_client.info("replication")
            return info.get("master_link_status") == "up"

        for _ in range(100):
            with contextlib.suppress(OSError, aioredis.RedisError):
                if await synced():
                    break
            await asyncio.sleep(0.1)
        else:
            log = replica.process.log() if replica.process is not None else ""
            raise AssertionError(f"the replica never synced:\n{log}")
        assert await backend.connected_replicas() == 1

        replicated = [_item("")]
        assert await backend.store_many(replicated, ttl=60, replicas="auto", wait_ms=5000) == [True]
        assert await _wait_calls(client) == before + 1
        assert await replica_client.get(replicated[0][0].result_key) is not None
        items += replicated
        await replica_client.aclose()
    finally:
        if replica is not None:
            replica.stop()
        await client.delete(*(task.result_key for task, _ in items))
        await client.aclose()
