"""The dispatcher over small in-memory fakes of the RabbitMQ channel, the result store and the
waiter: which lane a task takes, what it carries, and how broker answers become errors."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError, PublishError

from api.catalog import ModelInfo
from api.dispatch import Dispatcher
from api.exceptions import (
    ModelUnavailable,
    Overloaded,
    ResultTimeout,
    ServiceUnavailable,
    TaskConflict,
)
from api.tests.fake_waiter import FakeWaiter
from conveyor.protocol import (
    MAX_TASKS_PER_MESSAGE,
    TASK_BATCH_CONTENT_TYPE,
    TASK_BATCH_FEATURE,
    TASK_CONTENT_TYPE,
)
from conveyor.results import CancelOutcome, TaskRecord
from proto import model_a_pb2, task_pb2

INFO = ModelInfo(
    name="echo",
    version="2",
    versions=("1", "2"),
    instances=1,
    request_class=model_a_pb2.ModelARequest,
    response_class=model_a_pb2.ModelAResponse,
)
PACKING = dataclasses.replace(INFO, features=frozenset({TASK_BATCH_FEATURE}))
"""A version whose live workers all unpack TaskBatch messages."""


@dataclass
class Published:
    body: bytes
    properties: Any


class FakeUnderlay:
    """The aiormq channel under an aio-pika channel: what the dispatcher publishes with."""

    def __init__(self) -> None:
        self.published: list[tuple[Published, str, bool]] = []
        self.fail: Exception | None = None
        self.on_publish: Any = None
        self.gate: asyncio.Event | None = None  # when set: publishes wait for it

    async def basic_publish(
        self, body: bytes, *, routing_key: str, properties: Any, mandatory: bool = False,
        **options: Any,
    ) -> None:  # fmt: skip
        if self.fail is not None:
            raise self.fail
        self.published.append((Published(body, properties), routing_key, mandatory))
        if self.gate is not None:
            await self.gate.wait()
        if self.on_publish is not None:
            for task in _tasks(Published(body, properties)):
                self.on_publish(task)


def _tasks(message: Published) -> list[task_pb2.Task]:
    """The tasks a published message carries: one, or a TaskBatch's."""
    if message.properties.content_type == TASK_BATCH_CONTENT_TYPE:
        return list(task_pb2.TaskBatch.FromString(message.body).tasks)
    assert message.properties.content_type == TASK_CONTENT_TYPE
    return [task_pb2.Task.FromString(message.body)]


class FakeChannel:
    def __init__(self) -> None:
        self.underlay = FakeUnderlay()
        self.is_closed = False

    async def get_underlay_channel(self) -> FakeUnderlay:
        return self.underlay


class FakeResults:
    """The ResultBackend's methods the dispatcher uses, over dicts."""

    def __init__(self) -> None:
        self.results: dict[str, task_pb2.TaskResult] = {}
        self.records: dict[str, TaskRecord] = {}
        self.redis = self  # delete() below stands in for the client

    async def delete(self, key: str) -> None:
        self.records.pop(key.rsplit(":", 1)[1], None)

    async def read(self, task_id: str) -> task_pb2.TaskResult | None:
        return self.results.get(task_id)

    async def record_task(self, task_id: str, record: TaskRecord, ttl_seconds: int) -> None:
        self.records[task_id] = record

    async def submit(self, task_id: str, record: TaskRecord, ttl_seconds: int) -> int:
        self.records[task_id] = record
        return len(self.records)

    async def status(self, task_id: str) -> tuple[TaskRecord | None, task_pb2.TaskResult | None]:
        return self.records.get(task_id), self.results.get(task_id)

    async def cancel(
        self, task_id: str, result: task_pb2.TaskResult, ttl: int, record: TaskRecord | None = None
    ) -> tuple[CancelOutcome, task_pb2.TaskResult | None]:
        if task_id in self.results:
            return CancelOutcome.FINISHED, self.results[task_id]
        self.results[task_id] = result
        return CancelOutcome.CANCELLED, None


def _dispatcher(**kwargs: Any) -> tuple[Dispatcher, FakeChannel, FakeResults, FakeWaiter]:
    channel, results, waiter = FakeChannel(), FakeResults(), FakeWaiter()
    dispatcher = Dispatcher(
        "amqp://unused",
        results,  # type: ignore[arg-type]
        result_ttl=60,
        waiter=waiter,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        **kwargs,
    )
    return dispatcher, channel, results, waiter


def _answer(waiter: FakeWaiter) -> Any:
    def on_publish(task: task_pb2.Task) -> None:
        response = model_a_pb2.ModelAResponse(reply=task.request_id)
        result = task_pb2.TaskResult(task_id=task.task_id, response=response.SerializeToString())
        waiter.futures[task.task_id].set_result(result)

    return on_publish


@pytest.mark.asyncio
async def test_a_sync_task_takes_the_fast_lane_and_gets_its_result_from_the_notification() -> None:
    dispatcher, channel, results, waiter = _dispatcher()
    channel.underlay.on_publish = _answer(waiter)
    result = await dispatcher.run(INFO, b"payload", seconds=5.0, priority=7, request_id="r-1")
    assert model_a_pb2.ModelAResponse.FromString(result.response).reply == "r-1"
    message, queue, mandatory = channel.underlay.published[0]
    assert (queue, mandatory) == ("conveyor.sync.echo.2", True)
    assert message.properties.priority == 7
    assert message.properties.delivery_mode == 1  # transient
    assert 4000 <= int(message.properties.expiration) <= 5000  # ms: the caller's deadline
    task = task_pb2.Task.FromString(message.body)
    assert (task.model, task.version, task.reply_channel) == ("echo", "2", waiter.channel)
    assert results.records == {}  # a sync task that answers in time leaves no record


@pytest.mark.asyncio
async def test_an_async_task_is_recorded_and_takes_a_durable_lane_by_priority() -> None:
    dispatcher, channel, results, _ = _dispatcher()
    low = await dispatcher.submit(INFO, b"p", deadline=60.0, priority=0)
    high = await dispatcher.submit(INFO, b"p", deadline=60.0, priority=5)
    queues = [queue for _, queue, _ in channel.underlay.published]
    assert queues == ["conveyor.tasks.echo.2", "conveyor.tasks.echo.2.high"]
    assert channel.underlay.published[0][0].properties.delivery_mode == 2  # persistent
    assert set(results.records) == {low, high}
    assert results.records[low].version == "2"


@pytest.mark.asyncio
async def test_sync_durable_sends_sync_tasks_through_the_durable_lane() -> None:
    dispatcher, channel, _, waiter = _dispatcher(sync_durable=True)
    channel.underlay.on_publish = _answer(waiter)
    await dispatcher.run(INFO, b"p", seconds=5.0)
    assert channel.underlay.published[0][1] == "conveyor.tasks.echo.2"


@pytest.mark.asyncio
async def test_no_result_in_time_is_a_timeout_and_the_task_is_recorded_for_polling() -> None:
    dispatcher, _, results, _ = _dispatcher()
    with pytest.raises(ResultTimeout) as caught:
        await dispatcher.run(INFO, b"p", seconds=0.05)
    assert caught.value.task_id in results.records


@pytest.mark.asyncio
async def test_a_result_whose_notification_was_lost_is_read_from_storage() -> None:
    dispatcher, channel, results, waiter = _dispatcher()

    def store_silently(task: task_pb2.Task) -> None:
        results.results[task.task_id] = task_pb2.TaskResult(task_id=task.task_id, response=b"")
        waiter.futures[task.task_id].set_result(None)  # woken without a result

    channel.underlay.on_publish = store_silently
    result = await dispatcher.run(INFO, b"p", seconds=5.0)
    assert result.WhichOneof("outcome") == "response"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("failure", "expected", "status_code"),
    [
        (DeliveryError(None, None), Overloaded, "overloaded"),  # type: ignore[arg-type]
        (PublishError.__new__(PublishError), ModelUnavailable, "model_unavailable"),
        (ChannelInvalidStateError("closed"), ServiceUnavailable, "service_unavailable"),
        (ConnectionResetError(), ServiceUnavailable, "service_unavailable"),
    ],
)
async def test_broker_answers_become_gateway_errors(
    failure: Exception, expected: type[Exception], status_code: str
) -> None:
    dispatcher, channel, results, _ = _dispatcher()
    channel.underlay.fail = failure
    with pytest.raises(expected) as caught:
        await dispatcher.run(INFO, b"p", seconds=1.0)
    assert caught.value.code == status_code  # type: ignore[attr-defined]
    with pytest.raises(expected):
        await dispatcher.submit(INFO, b"p", deadline=60.0)
    assert results.records == {}  # a task that was not published leaves no record


class FakeConnection:
    is_closed = False

    def __init__(self) -> None:
        self.opened: list[FakeChannel] = []

    async def channel(self, **options: Any) -> FakeChannel:
        self.opened.append(FakeChannel())
        return self.opened[-1]


def _pooled(size: int) -> tuple[Dispatcher, list[FakeChannel], FakeConnection]:
    dispatcher, first, _, _ = _dispatcher()
    channels = [first] + [FakeChannel() for _ in range(size - 1)]
    connection = FakeConnection()
    publisher = dispatcher.publisher
    publisher._channels = channels  # type: ignore[assignment]
    publisher._busy = [0] * size
    publisher._renewed = [0.0] * size
    publisher._connection = connection  # type: ignore[assignment]
    return dispatcher, channels, connection


@pytest.mark.asyncio
async def test_each_publish_takes_the_channel_with_the_fewest_in_flight() -> None:
    dispatcher, channels, _ = _pooled(3)
    channels[0].underlay.gate = asyncio.Event()  # its publish hangs (e.g. a slow confirm)
    hanging = asyncio.create_task(dispatcher.submit(INFO, b"p", deadline=60.0))
    await asyncio.sleep(0.01)
    for _ in range(4):
        await dispatcher.submit(INFO, b"p", deadline=60.0)
    assert [len(c.underlay.published) for c in channels] == [1, 4, 0]  # ties: the first
    channels[0].underlay.gate.set()
    await hanging


@pytest.mark.asyncio
async def test_a_nack_swaps_that_channel_once_a_second_then_is_a_429() -> None:
    dispatcher, channels, connection = _pooled(2)
    channels[0].underlay.fail = DeliveryError(None, None)  # type: ignore[arg-type]
    await dispatcher.submit(INFO, b"p", deadline=60.0)  # nacked, then sent on a new channel
    assert len(connection.opened) == 1
    assert id(dispatcher.publisher._channels[0]) == id(connection.opened[0])  # slot 0 swapped
    assert len(connection.opened[0].underlay.published) == 1
    connection.opened[0].underlay.fail = DeliveryError(None, None)  # type: ignore[arg-type]
    with pytest.raises(Overloaded):  # nacked again within the second: the queue is full
        await dispatcher.submit(INFO, b"p", deadline=60.0)
    assert len(connection.opened) == 1
    assert channels[1].underlay.published == []


@pytest.mark.asyncio
async def test_cancel_a_queued_task_then_a_finished_one() -> None:
    dispatcher, _, results, _ = _dispatcher()
    task_id = await dispatcher.submit(INFO, b"p", deadline=60.0)
    status = await dispatcher.cancel(task_id)
    assert status.result is not None
    assert status.result.error.code == task_pb2.TaskError.CANCELLED
    again = await dispatcher.cancel(task_id)  # cancelling twice is the same answer
    assert again.result is not None and again.result.error.code == task_pb2.TaskError.CANCELLED
    done = await dispatcher.submit(INFO, b"p", deadline=60.0)
    results.results[done] = task_pb2.TaskResult(task_id=done, response=b"")
    with pytest.raises(TaskConflict) as caught:
        await dispatcher.cancel(done)
    assert caught.value.status == "done"


async def _run_together(
    dispatcher: Dispatcher, info: ModelInfo, priorities: list[int]
) -> list[task_pb2.TaskResult]:
    """Sync requests that reach the gateway in the same turn of its loop."""
    return await asyncio.gather(
        *(
            dispatcher.run(info, b"p", seconds=5.0, priority=p, request_id=f"r-{i}")
            for i, p in enumerate(priorities)
        )
    )


@pytest.mark.asyncio
async def test_sync_tasks_of_one_turn_leave_as_one_message_each_answered_on_its_own() -> None:
    dispatcher, channel, _, waiter = _dispatcher()
    channel.underlay.on_publish = _answer(waiter)
    results = await _run_together(dispatcher, PACKING, [0] * 5)
    replies = [model_a_pb2.ModelAResponse.FromString(r.response).reply for r in results]
    assert replies == [f"r-{i}" for i in range(5)]
    [(message, queue, mandatory)] = channel.underlay.published
    assert (queue, mandatory) == ("conveyor.sync.echo.2", True)
    assert message.properties.content_type == TASK_BATCH_CONTENT_TYPE
    assert message.properties.delivery_mode == 1  # transient
    assert 4000 <= int(message.properties.expiration) <= 5000
    tasks = _tasks(message)
    assert [t.request_id for t in tasks] == [f"r-{i}" for i in range(5)]
    assert len({t.task_id for t in tasks}) == 5


@pytest.mark.asyncio
async def test_a_task_alone_leaves_as_a_plain_task_message() -> None:
    dispatcher, channel, _, waiter = _dispatcher()
    channel.underlay.on_publish = _answer(waiter)
    await dispatcher.run(PACKING, b"p", seconds=5.0, request_id="alone")
    [(message, _, _)] = channel.underlay.published
    assert message.properties.content_type == TASK_CONTENT_TYPE
    assert message.properties.message_id == task_pb2.Task.FromString(message.body).task_id


@pytest.mark.asyncio
async def test_packs_are_per_priority_and_at_most_the_limit() -> None:
    dispatcher, channel, _, waiter = _dispatcher()
    channel.underlay.on_publish = _answer(waiter)
    count = MAX_TASKS_PER_MESSAGE + 3
    await _run_together(dispatcher, PACKING, [0] * count + [7, 7])
    sizes: dict[int, list[int]] = {}
    for message, _, _ in channel.underlay.published:
        priorities = {t.priority for t in _tasks(message)}
        assert priorities == {message.properties.priority}  # one priority per message
        sizes.setdefault(message.properties.priority, []).append(len(_tasks(message)))
    assert sizes == {0: [MAX_TASKS_PER_MESSAGE, 3], 7: [2]}


@pytest.mark.asyncio
async def test_tasks_that_come_one_a_turn_while_a_confirm_is_awaited_leave_as_one_pack() -> None:
    dispatcher, channel, _, waiter = _dispatcher()
    channel.underlay.on_publish = _answer(waiter)
    channel.underlay.gate = asyncio.Event()  # the first message's confirm is slow
    first = asyncio.create_task(dispatcher.run(PACKING, b"p", seconds=5.0, request_id="r-0"))
    later = []
    for i in range(1, 5):  # one a turn, as gRPC hands calls to the loop
        await asyncio.sleep(0)
        later.append(
            asyncio.create_task(dispatcher.run(PACKING, b"p", seconds=5.0, request_id=f"r-{i}"))
        )
    await asyncio.sleep(0.01)
    assert len(channel.underlay.published) == 1  # the rest wait for the confirm
    channel.underlay.gate.set()
    await asyncio.gather(first, *later)
    sizes = [len(_tasks(m)) for m, _, _ in channel.underlay.published]
    assert sizes == [1, 4]


@pytest.mark.asyncio
async def test_a_version_with_a_worker_that_cannot_unpack_gets_one_message_a_task() -> None:
    dispatcher, channel, _, waiter = _dispatcher()
    channel.underlay.on_publish = _answer(waiter)
    await _run_together(dispatcher, INFO, [0] * 4)  # INFO: no "task-batch" feature
    contents = [m.properties.content_type for m, _, _ in channel.underlay.published]
    assert contents == [TASK_CONTENT_TYPE] * 4


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (DeliveryError(None, None), Overloaded),  # type: ignore[arg-type]
        (PublishError.__new__(PublishError), ModelUnavailable),
        (ConnectionResetError(), ServiceUnavailable),
    ],
)
async def test_a_refused_pack_fails_each_of_its_callers_with_the_gateway_error(
    failure: Exception, expected: type[Exception]
) -> None:
    dispatcher, channel, _, _ = _dispatcher()
    channel.underlay.fail = failure
    outcomes = await asyncio.gather(
        *(dispatcher.run(PACKING, b"p", seconds=1.0) for _ in range(3)), return_exceptions=True
    )
    assert [type(o) for o in outcomes] == [expected] * 3


@pytest.mark.asyncio
async def test_a_caller_waits_for_the_shared_confirm_no_longer_than_its_own_timeout() -> None:
    dispatcher, channel, _, waiter = _dispatcher()
    answer = _answer(waiter)
    # The hasty caller has gone by the time the task is answered: nobody waits for it.
    channel.underlay.on_publish = lambda task: task.task_id in waiter.futures and answer(task)
    channel.underlay.gate = asyncio.Event()  # the broker is slow to confirm
    hasty = asyncio.create_task(dispatcher.run(PACKING, b"p", seconds=0.05, request_id="h"))
    patient = asyncio.create_task(dispatcher.run(PACKING, b"p", seconds=5.0, request_id="p"))
    with pytest.raises(ServiceUnavailable):
        await asyncio.wait_for(hasty, 2.0)  # its own 0.05 s, not the message's 5 s
    assert len(channel.underlay.published) == 1  # both left in one message
    channel.underlay.gate.set()
    result = await patient
    assert model_a_pb2.ModelAResponse.FromString(result.response).reply == "p"
