"""Group commit: results handed over while a store is on the wire share the next store; a task
is acknowledged only after its result is stored; a store that fails requeues its tasks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proto import task_pb2
from worker_base.commit import GroupCommit
from worker_base.scheduler import Delivery, Scheduler

Item = tuple[task_pb2.Task, task_pb2.TaskResult]


class Recorder:
    """A store that holds each call until released, and a settle that records the order."""

    def __init__(self) -> None:
        self.stores: list[list[str]] = []
        self.events: list[str] = []
        self.release = asyncio.Event()
        self.fail = False

    async def store(self, items: list[Item]) -> None:
        ids = [task.task_id for task, _ in items]
        self.stores.append(ids)
        self.events.append(f"store {','.join(ids)}")
        await self.release.wait()
        if self.fail:
            raise RuntimeError("store broke")

    async def settle(self, deliveries: list[Delivery], stored: bool) -> None:
        for delivery in deliveries:
            self.events.append(f"{'ack' if stored else 'requeue'} {delivery.task.task_id}")


def _done(scheduler: Scheduler, task_id: str) -> tuple[Delivery, task_pb2.TaskResult]:
    message: Any = object()  # never looked into: settling is the recorder's
    delivery = scheduler.make(task_pb2.Task(task_id=task_id, result_key=task_id), message, "sync")
    return delivery, task_pb2.TaskResult(task_id=task_id)


async def _settled(recorder: Recorder, count: int) -> None:
    for _ in range(100):
        if sum(e.startswith(("ack", "requeue")) for e in recorder.events) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {recorder.events}")


@pytest.mark.asyncio
async def test_results_finished_during_a_store_share_the_next_one() -> None:
    recorder, scheduler = Recorder(), Scheduler()
    commits = GroupCommit(recorder.store, recorder.settle)
    commits.add([_done(scheduler, "a")])
    await asyncio.sleep(0)  # the first store is now on the wire
    commits.add([_done(scheduler, "b")])
    commits.add([_done(scheduler, "c"), _done(scheduler, "d")])
    assert len(commits) == 3
    recorder.release.set()
    await _settled(recorder, 4)
    assert recorder.stores == [["a"], ["b", "c", "d"]]
    # Each task is acknowledged after the store that holds its result, never before.
    assert recorder.events == [
        "store a",
        "ack a",
        "store b,c,d",
        "ack b",
        "ack c",
        "ack d",
    ]


@pytest.mark.asyncio
async def test_an_idle_worker_stores_at_once() -> None:
    recorder, scheduler = Recorder(), Scheduler()
    recorder.release.set()
    commits = GroupCommit(recorder.store, recorder.settle)
    commits.add([_done(scheduler, "a")])
    await _settled(recorder, 1)
    commits.add([_done(scheduler, "b")])
    await _settled(recorder, 2)
    assert recorder.stores == [["a"], ["b"]]


@pytest.mark.asyncio
async def test_a_failed_store_requeues_its_tasks_and_later_ones_still_go() -> None:
    recorder, scheduler = Recorder(), Scheduler()
    recorder.fail = True
    recorder.release.set()
    commits = GroupCommit(recorder.store, recorder.settle)
    commits.add([_done(scheduler, "a"), _done(scheduler, "b")])
    await _settled(recorder, 2)
    recorder.fail = False
    commits.add([_done(scheduler, "c")])
    await _settled(recorder, 3)
    assert recorder.events == ["store a,b", "requeue a", "requeue b", "store c", "ack c"]


@pytest.mark.asyncio
async def test_close_stops_a_store_in_progress() -> None:
    recorder, scheduler = Recorder(), Scheduler()
    commits = GroupCommit(recorder.store, recorder.settle)
    commits.add([_done(scheduler, "a")])
    await asyncio.sleep(0)
    await commits.close()
    assert recorder.events == ["store a"]  # never acknowledged: the broker redelivers it
