"""Workers' result writes WAIT for a replica: they return once it holds them, and fail (so the
task stays unacknowledged and is stored again) while no replica confirms."""

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from conveyor.redis import redis_client
from conveyor.results import NotReplicated, ResultBackend
from proto import task_pb2
from tests.sentinel.replicas import PrimaryWithReplica


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[PrimaryWithReplica]:
    pair = PrimaryWithReplica(tmp_path)
    try:
        yield pair
    finally:
        pair.close()


def _item(task_id: str) -> tuple[task_pb2.Task, task_pb2.TaskResult]:
    task = task_pb2.Task(task_id=task_id, result_key=f"test:wait:{task_id}")
    return task, task_pb2.TaskResult(task_id=task_id, response=b"answer")


async def _store(url: str, replica_url: str, task_ids: list[str], replicas: int) -> list[bool]:
    client = redis_client(url, 4)
    replica = aioredis.from_url(replica_url)
    try:
        stored = await ResultBackend(client).store_many(
            [_item(t) for t in task_ids], ttl=60, replicas=replicas, wait_ms=5000
        )
        held = [await replica.exists(f"test:wait:{t}") for t in task_ids]
        assert replicas == 0 or all(held), "WAIT returned before the replica held the results"
        return stored
    finally:
        await client.aclose()
        await replica.aclose()


def test_store_returns_once_the_replica_holds_the_results(servers: PrimaryWithReplica) -> None:
    stored = asyncio.run(
        _store(servers.primary.url, servers.replica.url, ["a", "b", "c"], replicas=1)
    )
    assert stored == [True, True, True]


def test_store_fails_while_a_connected_replica_does_not_confirm(
    servers: PrimaryWithReplica,
) -> None:
    servers.replica.signal(signal.SIGSTOP)  # connected, but silent

    async def store() -> None:
        client = redis_client(servers.primary.url, 4)
        try:
            await ResultBackend(client).store_many([_item("d")], ttl=60, replicas=1, wait_ms=200)
        finally:
            await client.aclose()

    try:
        with pytest.raises(NotReplicated, match="0 of 1 replicas acknowledged within 200 ms"):
            asyncio.run(store())
    finally:
        servers.replica.signal(signal.SIGCONT)


def test_store_does_not_wait_for_a_replica_that_is_gone(servers: PrimaryWithReplica) -> None:
    servers.replica.kill()
    gone = redis.Redis(port=servers.primary.port)
    try:
        for _ in range(100):
            if int(gone.info("replication")["connected_slaves"]) == 0:
                break
            time.sleep(0.1)
    finally:
        gone.close()

    async def store() -> list[bool]:
        client = redis_client(servers.primary.url, 4)
        try:
            return await ResultBackend(client).store_many(
                [_item("e")], ttl=60, replicas=1, wait_ms=200
            )
        finally:
            await client.aclose()

    assert asyncio.run(store()) == [True]
