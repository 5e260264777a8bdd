"""Settling deliveries: a task is acknowledged only after its result is stored.

Group commit: results handed over while a store is on the wire share the next store; a store
that fails requeues its tasks. Multiple acks: one ``multiple`` ack for a run of deliveries, only
where no open delivery below would be acknowledged with them. A ``TaskBatch`` message is settled
with its last task. (The worker's intake of such messages: test_worker.py.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proto import task_pb2
from worker_base.scheduler import Delivery, Scheduler
from worker_base.settle import Acknowledger, GroupCommit, Pack

# Multiple acks.


class Channel:
    """A channel that records the acks sent on it."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []
        self.is_closed = False
        self.fail = False


class Message:
    """A delivery on ``channel`` numbered ``tag``."""

    def __init__(self, channel: Channel, tag: int) -> None:
        self._channel = channel
        self.delivery_tag = tag

    @property
    def channel(self) -> Channel:
        if self._channel.is_closed:
            raise RuntimeError("channel closed")
        return self._channel

    async def ack(self, multiple: bool = False) -> None:
        if self.channel.fail:
            raise ConnectionError("broker gone")
        self.channel.acks.append((self.delivery_tag, multiple))


def _delivered(acks: Acknowledger, channel: Channel, tags: range) -> dict[int, Message]:
    messages = {tag: Message(channel, tag) for tag in tags}
    for message in messages.values():
        acks.opened(message)
    return messages


@pytest.mark.asyncio
async def test_a_run_with_nothing_open_below_is_one_multiple_ack() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 6))
    failures = await acks.ack([messages[3], messages[1], messages[2]])
    assert failures == [None, None, None]
    assert channel.acks == [(3, True)]
    assert acks.open_count() == 2  # 4 and 5 are still open


@pytest.mark.asyncio
async def test_an_open_delivery_below_is_never_covered() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 7))
    # 3 is still running: 1 and 2 may go together, 4 and 6 must go alone.
    await acks.ack([messages[1], messages[2], messages[4], messages[6]])
    assert sorted(channel.acks) == [(2, True), (4, False), (6, False)]
    channel.acks.clear()
    await acks.ack([messages[3], messages[5]])  # now nothing open is left below 5
    assert channel.acks == [(5, True)]
    assert acks.open_count() == 0


@pytest.mark.asyncio
async def test_a_delivery_settled_otherwise_no_longer_blocks_a_run() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 4))
    acks.closed(messages[1])  # rejected: the broker no longer holds it open
    await acks.ack([messages[2], messages[3]])
    assert channel.acks == [(3, True)]


@pytest.mark.asyncio
async def test_a_lone_delivery_is_acknowledged_alone() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 3))
    await acks.ack([messages[1]])
    assert channel.acks == [(1, False)]


@pytest.mark.asyncio
async def test_channels_are_apart() -> None:
    acks, first, second = Acknowledger(), Channel(), Channel()
    old = _delivered(acks, first, range(1, 3))
    new = _delivered(acks, second, range(1, 3))
    await acks.ack([new[1], new[2]])
    assert second.acks == [(2, True)]
    assert first.acks == []  # tag 2 of the other channel says nothing about these
    assert acks.open_count() == 2
    await acks.ack([old[1], old[2]])
    assert first.acks == [(2, True)]


@pytest.mark.asyncio
async def test_a_failed_ack_is_reported_for_every_delivery_it_covered() -> None:
    acks, channel = Acknowledger(), Channel()
    messages = _delivered(acks, channel, range(1, 4))
    channel.fail = True
    failures = await acks.ack([messages[1], messages[2], messages[3]])
    assert all(isinstance(failure, ConnectionError) for failure in failures)
    assert acks.open_count() == 0  # settled as far as the worker goes: the broker requeues them


@pytest.mark.asyncio
async def test_a_closed_channel_is_forgotten_when_a_new_one_delivers() -> None:
    acks, first, second = Acknowledger(), Channel(), Channel()
    _delivered(acks, first, range(1, 4))
    first.is_closed = True
    _delivered(acks, second, range(1, 2))
    assert acks.open_count() == 1


# Group commit.

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
async def test_store_now_stores_in_the_callers_task_and_later_results_share_the_next_flush() -> (
    None
):
    recorder, scheduler = Recorder(), Scheduler()
    commits = GroupCommit(recorder.store, recorder.settle)
    assert commits.idle
    storing = asyncio.create_task(commits.store_now([_done(scheduler, "a")]))
    await asyncio.sleep(0)  # "a" is on the wire, in the caller's task
    assert recorder.stores == [["a"]]
    assert not _idle(commits)
    with pytest.raises(RuntimeError):
        await commits.store_now([_done(scheduler, "x")])  # one store on the wire at a time
    commits.add([_done(scheduler, "b")])
    commits.add([_done(scheduler, "c")])
    recorder.release.set()
    await storing
    assert recorder.events[:2] == ["store a", "ack a"]  # settled before store_now returns
    await _settled(recorder, 3)
    assert recorder.stores == [["a"], ["b", "c"]]
    await asyncio.sleep(0)
    assert _idle(commits)


def _idle(commits: GroupCommit) -> bool:
    return commits.idle  # read anew each time (an assert would fix its type for mypy)


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


# A TaskBatch message's tasks.


def test_a_pack_settles_with_its_last_task_and_remembers_a_requeue() -> None:
    pack = Pack(object(), 3)  # type: ignore[arg-type]
    assert not pack.settle(requeue=False)
    assert not pack.settle(requeue=True)
    assert pack.settle(requeue=False)
    assert pack.requeue
    with pytest.raises(RuntimeError):
        pack.settle(requeue=False)
