"""The worker's local queue: priority order; batches that are partial, full or delayed; and
no waiting for a lone client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from proto import task_pb2
from worker_base.scheduler import LONE_WAITS, Scheduler


def _task(task_id: str, priority: int = 0) -> task_pb2.Task:
    return task_pb2.Task(task_id=task_id, priority=priority, result_key=task_id)


async def _put(scheduler: Scheduler, task_id: str, priority: int = 0) -> None:
    message: Any = object()  # the scheduler never looks into the broker message
    await scheduler.put(scheduler.make(_task(task_id, priority), message, "sync"))


async def _take_while_arriving(scheduler: Scheduler, task_id: str) -> list[str]:
    """Take a batch (up to 8, 1 s delay) while ``task_id`` arrives 50 ms into the wait; the
    ids taken."""

    async def later() -> None:
        await asyncio.sleep(0.05)
        await _put(scheduler, task_id)

    arriving = asyncio.create_task(later())
    batch = await scheduler.take(8, max_delay=1.0)
    await arriving
    return [d.task.task_id for d in batch]


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
    batch = await _take_while_arriving(scheduler, "second")
    # The batch may close when it is full or when the delay ends; "second" came well within it.
    assert batch == ["first", "second"]


@pytest.mark.asyncio
async def test_batch_size_one_never_waits() -> None:
    scheduler = Scheduler()
    await _put(scheduler, "a")
    await _put(scheduler, "b")
    started = time.monotonic()
    assert [d.task.task_id for d in await scheduler.take(1, max_delay=5.0)] == ["a"]
    assert time.monotonic() - started < 1.0


def _waits(scheduler: Scheduler) -> bool:
    """Read anew each time (mypy would keep what an earlier assert narrowed the attribute to)."""
    return scheduler.waiting


async def _lone_batches(scheduler: Scheduler, count: int, delay: float) -> None:
    """``count`` batches of one task each, each waiting out ``delay``."""
    for i in range(count):
        await _put(scheduler, f"lone{i}")
        assert len(await scheduler.take(8, max_delay=delay)) == 1


@pytest.mark.asyncio
async def test_lone_waits_in_a_row_stop_the_waiting() -> None:
    scheduler = Scheduler()
    await _lone_batches(scheduler, LONE_WAITS - 1, 0.01)
    assert _waits(scheduler)
    await _lone_batches(scheduler, 1, 0.01)
    assert not _waits(scheduler)
    await _put(scheduler, "alone")
    started = time.monotonic()
    assert [d.task.task_id for d in await scheduler.take(8, max_delay=10.0)] == ["alone"]
    assert time.monotonic() - started < 1.0  # handed out at once, not after 10 s
    assert not _waits(scheduler)


@pytest.mark.asyncio
async def test_two_queued_turn_the_waiting_back_on() -> None:
    scheduler = Scheduler()
    await _lone_batches(scheduler, LONE_WAITS, 0.01)
    await _put(scheduler, "a")
    await _put(scheduler, "b")
    started = time.monotonic()
    assert [d.task.task_id for d in await scheduler.take(8, max_delay=10.0)] == ["a", "b"]
    assert time.monotonic() - started < 1.0  # what was queued, at once
    assert _waits(scheduler)
    # Waiting again: a task arriving within the delay joins the next batch.
    await _put(scheduler, "c")
    assert await _take_while_arriving(scheduler, "d") == ["c", "d"]


@pytest.mark.asyncio
async def test_a_fuller_batch_restarts_the_count_of_lone_waits() -> None:
    scheduler = Scheduler()
    await _lone_batches(scheduler, LONE_WAITS - 1, 0.01)
    await _put(scheduler, "a")
    await _put(scheduler, "b")
    assert len(await scheduler.take(8, max_delay=0.01)) == 2
    await _lone_batches(scheduler, LONE_WAITS - 1, 0.01)
    assert _waits(scheduler)


@pytest.mark.asyncio
async def test_unbatched_takes_leave_the_waiting_alone() -> None:
    scheduler = Scheduler()
    for i in range(LONE_WAITS + 1):
        await _put(scheduler, f"t{i}")
        assert len(await scheduler.take(1, max_delay=0.01)) == 1
    assert _waits(scheduler)


@pytest.mark.asyncio
async def test_a_lent_turn_counts_against_the_runners() -> None:
    """Two runners: with both turns lent, a queued delivery waits until one is given back."""
    scheduler = Scheduler()
    assert not scheduler.lend(batching=False)  # no runner waits: nothing to lend
    taking = [asyncio.create_task(scheduler.take(1, 0)) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert scheduler.lend(batching=False)
    assert scheduler.lend(batching=False)
    assert not scheduler.lend(batching=False)  # both turns lent
    await _put(scheduler, "queued")
    await asyncio.sleep(0.05)
    assert not any(t.done() for t in taking)  # no runner may take it: it would be a third
    assert not scheduler.lend(batching=False)  # something is queued: it goes first
    await scheduler.give_back()
    done, pending = await asyncio.wait(taking, timeout=1, return_when=asyncio.FIRST_COMPLETED)
    assert [d.task.task_id for d in done.pop().result()] == ["queued"]
    await scheduler.give_back()
    for task in pending:
        task.cancel()


@pytest.mark.asyncio
async def test_no_turn_is_lent_while_batches_wait_to_fill() -> None:
    scheduler = Scheduler()
    taking = asyncio.create_task(scheduler.take(8, 0.001))
    await asyncio.sleep(0.01)
    assert not scheduler.lend(batching=True)  # a batch may still form
    scheduler.waiting = False  # a lone client: the scheduler no longer waits
    assert scheduler.lend(batching=True)
    await scheduler.give_back()
    taking.cancel()
