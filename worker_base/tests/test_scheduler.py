"""The worker's local queue: priority order, and batches that are partial, full or delayed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from proto import task_pb2
from worker_base.scheduler import Scheduler


def _task(task_id: str, priority: int = 0) -> task_pb2.Task:
    return task_pb2.Task(task_id=task_id, priority=priority, result_key=task_id)


async def _put(scheduler: Scheduler, task_id: str, priority: int = 0) -> None:
    message: Any = object()  # the scheduler never looks into the broker message
    await scheduler.put(scheduler.make(_task(task_id, priority), message, "sync"))


@pytest.mark.asyncio
async def test_highest_priority_first_then_arrival_order() -> None:
    scheduler = Scheduler()
    for task_id, priority in (("a", 0), ("b", 0), ("c", 9), ("d", 5), ("e", 9)):
        await _put(scheduler, task_id, priority)
    order = [d.task.task_id for d in await scheduler.take(10, 0)]
    assert order == ["c", "e", "d", "a", "b"]


@pytest.mark.asyncio
async def test_a_full_batch_is_taken_at_once() -> None:
    scheduler = Scheduler()
    for i in range(5):
        await _put(scheduler, f"t{i}")
    started = time.monotonic()
    batch = await scheduler.take(4, max_delay=10.0)
    assert [d.task.task_id for d in batch] == ["t0", "t1", "t2", "t3"]
    assert time.monotonic() - started < 1.0  # no waiting when the batch is full
    assert len(scheduler) == 1


@pytest.mark.asyncio
async def test_a_partial_batch_waits_at_most_the_delay() -> None:
    scheduler = Scheduler()
    await _put(scheduler, "only")
    started = time.monotonic()
    batch = await scheduler.take(8, max_delay=0.2)
    waited = time.monotonic() - started
    assert [d.task.task_id for d in batch] == ["only"]
    assert 0.15 <= waited < 2.0


@pytest.mark.asyncio
async def test_tasks_arriving_within_the_delay_join_the_batch() -> None:
    scheduler = Scheduler()
    await _put(scheduler, "first")

    async def later() -> None:
        await asyncio.sleep(0.05)
        await _put(scheduler, "second")

    arriving = asyncio.create_task(later())
    batch = await scheduler.take(8, max_delay=1.0)
    await arriving
    # The batch may close when it is full or when the delay ends; "second" came well within it.
    assert [d.task.task_id for d in batch] == ["first", "second"]


@pytest.mark.asyncio
async def test_batch_size_one_never_waits() -> None:
    scheduler = Scheduler()
    await _put(scheduler, "a")
    await _put(scheduler, "b")
    started = time.monotonic()
    assert [d.task.task_id for d in await scheduler.take(1, max_delay=5.0)] == ["a"]
    assert time.monotonic() - started < 1.0
