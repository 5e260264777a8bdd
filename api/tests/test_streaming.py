"""Streamed responses at the gateway over small in-memory fakes: the per-stream reader (pushes in
order, gaps filled from the event stream, restarts, a bounded buffer, a lost subscription, the
end), following a task from an id, and ``Dispatcher.stream`` (published alone, stopped when
closed early, the waiting bound)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import pytest

from api.dispatch import Dispatcher
from api.exceptions import Overloaded, ResultTimeout, TaskNotFound
from api.streaming import (
    READ_COUNT,
    ChunkReader,
    StreamEnd,
    StreamItem,
    batches_with_keepalives,
    follow_task,
    with_keepalives,
)
from api.tests.fake_waiter import FakeWaiter
from api.tests.test_dispatch import INFO, FakeChannel, FakeResults
from conveyor.events import TaskEvent
from conveyor.metrics import GatewayMetrics
from conveyor.protocol import stop_key
from conveyor.streams import Chunk, Restart, stream_item
from conveyor.waiter import ChunkSink
from proto import task_pb2

TASK = "t1"


class FakeEvents:
    """A task's event stream in memory, and the waiting bound (an ``EventSource``)."""

    def __init__(self, max_waiting: int = 10) -> None:
        self.entries: list[TaskEvent] = []
        self.reads = 0
        self.waiting = 0
        self.max_waiting = max_waiting
        self._ms = int(time.time() * 1000)
        self._seq = 0
        self.appended = asyncio.Event()
        self.on_read: Callable[[], None] | None = None

    def add(self, kind: str, **fields: str) -> TaskEvent:
        self._seq += 1
        event = TaskEvent(f"{self._ms}-{self._seq}", kind, fields)
        self.entries.append(event)
        self.appended.set()
        return event

    def chunk(self, index: int, attempt: int = 1) -> Chunk:
        payload = base64.b64encode(f"a{attempt}i{index}".encode()).decode()
        item = stream_item(self.add("chunk", index=str(index), attempt=str(attempt), data=payload))
        assert isinstance(item, Chunk)
        return item

    def restart(self, attempt: int) -> Restart:
        item = stream_item(self.add("restart", attempt=str(attempt)))
        assert isinstance(item, Restart)
        return item

    async def events_after(
        self, task_id: str, after: str, block_ms: int, count: int = 100
    ) -> list[TaskEvent]:
        self.reads += 1
        found = [e for e in self.entries if _key(e.id) > _key(after)][:count]
        if not found and block_ms > 0:
            self.appended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.appended.wait(), min(block_ms, 200) / 1000)
            found = [e for e in self.entries if _key(e.id) > _key(after)][:count]
        if self.on_read is not None:
            self.on_read()
        return found

    def check_room(self, model: str | None = None) -> None:
        if self.waiting >= self.max_waiting:
            raise Overloaded("full", model=model)

    @contextlib.asynccontextmanager
    async def parked(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1


def _key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def _done(text: str = "all") -> task_pb2.TaskResult:
    return task_pb2.TaskResult(task_id=TASK, response=text.encode())


def _reader(
    events: FakeEvents, stored: task_pb2.TaskResult | None = None, buffer: int = 8
) -> ChunkReader:
    async def read_result() -> task_pb2.TaskResult | None:
        return stored

    return ChunkReader(TASK, events, read_result, buffer)


async def _drain(reader: ChunkReader, seconds: float = 2.0) -> list[StreamItem]:
    """Everything the reader yields until its end (a timeout is an AssertionError)."""
    deadline = time.monotonic() + seconds
    items: list[StreamItem] = []
    while True:
        item = await reader.next(deadline)
        assert item is not None, f"timed out after {items}"
        items.append(item)
        if isinstance(item, StreamEnd):
            return items


def _ids(items: list[StreamItem]) -> list[str]:
    return [item.id for item in items if not isinstance(item, StreamEnd)]


@pytest.mark.asyncio
async def test_pushes_in_order_are_delivered_as_pushed_then_the_end() -> None:
    events = FakeEvents()
    reader = _reader(events)
    pushed = [events.chunk(i) for i in range(5)]
    for item in pushed:
        reader.push(item)
    events.add("done", code="")
    reader.resolved(_done())
    items = await _drain(reader)
    assert items[:-1] == pushed
    assert isinstance(items[-1], StreamEnd) and items[-1].result.response == b"all"
    assert reader.dropped == 0
    assert events.reads == 1  # only the check of what is left, at the end


@pytest.mark.asyncio
async def test_a_push_out_of_order_is_a_gap_filled_from_the_stream() -> None:
    events = FakeEvents()
    reader = _reader(events)
    chunks = [events.chunk(i) for i in range(4)]
    reader.push(chunks[0])
    reader.push(chunks[2])  # 1 was lost
    reader.push(chunks[3])
    first = await reader.next(time.monotonic() + 1)
    assert first == chunks[0]
    rest = [await reader.next(time.monotonic() + 1) for _ in range(3)]
    assert rest == chunks[1:]
    # Pushes of pieces read already are not repeated; the next one is taken again.
    reader.push(chunks[3])
    fifth = events.chunk(4)
    reader.push(fifth)
    assert await reader.next(time.monotonic() + 1) == fifth
    events.add("done", code="")
    reader.resolved(_done())
    assert isinstance(await reader.next(time.monotonic() + 1), StreamEnd)


@pytest.mark.asyncio
async def test_a_restart_passes_through_and_the_new_run_counts_from_zero() -> None:
    events = FakeEvents()
    reader = _reader(events)
    pushed: list[Chunk | Restart] = [events.chunk(0), events.chunk(1), events.restart(2)]
    pushed += [events.chunk(i, attempt=2) for i in range(3)]
    for item in pushed:
        reader.push(item)
    events.add("done", code="")
    reader.resolved(_done())
    items = await _drain(reader)
    assert items[:-1] == pushed
    assert reader.dropped == 0


@pytest.mark.asyncio
async def test_a_piece_of_another_run_without_its_restart_is_a_gap() -> None:
    events = FakeEvents()
    reader = _reader(events)
    first = events.chunk(0)
    restart = events.restart(2)  # its push lost
    again = events.chunk(0, attempt=2)
    reader.push(first)
    reader.push(again)
    events.add("done", code="")
    reader.resolved(_done())
    items = await _drain(reader)
    assert items[:-1] == [first, restart, again]


@pytest.mark.asyncio
async def test_a_slow_consumer_costs_a_bounded_buffer_and_loses_nothing() -> None:
    events = FakeEvents()
    reader = _reader(events, buffer=8)
    pushed = [events.chunk(i) for i in range(500)]
    for item in pushed:
        reader.push(item)
        assert len(reader._items) <= 8
    assert reader.dropped == 500 - 8
    events.add("done", code="")
    reader.resolved(_done())
    items = await _drain(reader)
    assert items[:-1] == pushed  # each once, in order
    assert events.reads <= 500 // READ_COUNT + 3  # read in batches


@pytest.mark.asyncio
async def test_a_piece_pushed_while_reading_is_read_once_more() -> None:
    events = FakeEvents()
    reader = _reader(events, buffer=1)
    pushed = [events.chunk(0), events.chunk(1)]
    reader.push(pushed[0])
    reader.push(pushed[1])  # no room: a gap
    late: list[Chunk] = []

    def during_read() -> None:  # appended and pushed after the read's answer was made
        if not late:
            late.append(events.chunk(2))
            reader.push(late[0])

    events.on_read = during_read
    assert await reader.next(time.monotonic() + 1) == pushed[0]
    assert await reader.next(time.monotonic() + 1) == pushed[1]  # read; the push dropped
    events.on_read = None
    assert await reader.next(time.monotonic() + 1) == late[0]  # read at once, no wait


@pytest.mark.asyncio
async def test_a_lost_subscription_reads_the_stream_and_the_stored_result() -> None:
    events = FakeEvents()
    reader = _reader(events, stored=_done("stored"))
    chunks = [events.chunk(i) for i in range(3)]
    reader.push(chunks[0])
    events.add("done", code="")
    reader.resync()  # pushes 1, 2 and the notification were lost meanwhile
    items = await _drain(reader)
    assert items[:-1] == chunks
    assert isinstance(items[-1], StreamEnd) and items[-1].result.response == b"stored"


@pytest.mark.asyncio
async def test_a_notification_without_the_result_reads_the_stored_one() -> None:
    events = FakeEvents()
    reader = _reader(events, stored=None)
    reader.resolved(None)  # nothing stored yet: keep waiting
    assert await reader.next(time.monotonic() + 0.1) is None  # the deadline passed


@pytest.mark.asyncio
async def test_a_push_wakes_a_waiting_reader() -> None:
    events = FakeEvents()
    reader = _reader(events)
    waiting = asyncio.create_task(reader.next(time.monotonic() + 5))
    await asyncio.sleep(0.01)
    chunk = events.chunk(0)
    reader.push(chunk)
    assert await asyncio.wait_for(waiting, 1) == chunk


@pytest.mark.asyncio
async def test_following_replays_after_an_id_then_follows_to_the_end() -> None:
    events = FakeEvents()
    chunks = [events.chunk(i) for i in range(3)]
    state: dict[str, task_pb2.TaskResult | None] = {"result": None}

    async def status() -> task_pb2.TaskResult | None:
        return state["result"]

    async def later() -> None:
        await asyncio.sleep(0.05)
        chunks.append(events.chunk(3))
        state["result"] = _done()
        events.add("done", code="")

    writer = asyncio.create_task(later())
    items = [item async for item in follow_task(events, TASK, chunks[0].id, True, None, status)]
    await writer
    assert items[:-1] == chunks[1:]
    assert isinstance(items[-1], StreamEnd)


@pytest.mark.asyncio
async def test_following_an_ended_task_after_its_last_piece_gives_its_end_at_once() -> None:
    events = FakeEvents()
    last = [events.chunk(i) for i in range(2)][-1]
    events.add("done", code="")

    async def status() -> task_pb2.TaskResult | None:
        raise AssertionError("not needed")

    items = [item async for item in follow_task(events, TASK, last.id, True, _done(), status)]
    assert len(items) == 1 and isinstance(items[0], StreamEnd)


# Dispatcher.stream and Dispatcher.follow


class StoppingResults(FakeResults):
    """The results fake, plus the client's SET (the stop key)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, Any] = {}

    async def set(self, key: str, value: Any, ex: int | None = None) -> None:
        self.keys[key] = value


class StreamingWaiter(FakeWaiter):
    chunk_channel = "conveyor:chunks:test"

    def __init__(self) -> None:
        super().__init__()
        self.sinks: dict[str, ChunkSink] = {}

    def open_stream(self, task_id: str, sink: ChunkSink) -> None:
        self.sinks[task_id] = sink

    def close_stream(self, task_id: str) -> None:
        self.sinks.pop(task_id, None)


def _streaming(
    max_waiting: int = 10,
) -> tuple[Dispatcher, FakeChannel, StoppingResults, StreamingWaiter, FakeEvents]:
    channel, results, waiter = FakeChannel(), StoppingResults(), StreamingWaiter()
    events = FakeEvents(max_waiting)
    dispatcher = Dispatcher(
        "amqp://unused",
        results,  # type: ignore[arg-type]
        result_ttl=60,
        waiter=waiter,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        events=events,
        metrics=GatewayMetrics(),
    )
    return dispatcher, channel, results, waiter, events


def _value(metrics: GatewayMetrics | None, name: str) -> float:
    assert metrics is not None
    found = metrics.registry.get_sample_value(name, {"model": "echo", "version": "2"})
    return found or 0.0


@pytest.mark.asyncio
async def test_a_sync_stream_is_published_alone_with_its_channels_and_yields_its_pieces() -> None:
    dispatcher, channel, _, waiter, events = _streaming()
    pieces: list[Chunk] = []

    def on_publish(task: task_pb2.Task) -> None:
        sink = waiter.sinks[task.task_id]
        for i in range(3):
            pieces.append(events.chunk(i))
            sink.push(pieces[-1])
        events.add("done", code="")
        sink.resolved(_done())

    channel.underlay.on_publish = on_publish
    items = [item async for item in dispatcher.stream(INFO, b"p", seconds=5.0)]
    assert items[:-1] == pieces and isinstance(items[-1], StreamEnd)
    message, queue, _ = channel.underlay.published[0]
    assert queue == "conveyor.sync.echo.2"
    task = task_pb2.Task.FromString(message.body)  # one task, never a TaskBatch
    assert task.stream and task.events_key == f"conveyor:events:{task.task_id}"
    assert (task.chunk_channel, task.reply_channel) == (waiter.chunk_channel, waiter.channel)
    assert waiter.sinks == {} and events.waiting == 0
    assert _value(dispatcher.metrics, "conveyor_stream_chunks_total") == 3
    assert _value(dispatcher.metrics, "conveyor_stream_first_chunk_seconds_count") == 1
    assert _value(dispatcher.metrics, "conveyor_streams_open") == 0


@pytest.mark.asyncio
async def test_closing_a_stream_before_its_end_asks_the_worker_to_stop() -> None:
    dispatcher, channel, results, waiter, events = _streaming()
    published: list[str] = []

    def on_publish(task: task_pb2.Task) -> None:
        published.append(task.task_id)
        waiter.sinks[task.task_id].push(events.chunk(0))

    channel.underlay.on_publish = on_publish
    stream = dispatcher.stream(INFO, b"p", seconds=5.0)
    assert isinstance(await anext(stream), Chunk)
    assert events.waiting == 1  # a waiting place, not an in-flight one, while it streams
    assert _value(dispatcher.metrics, "conveyor_streams_open") == 1
    await stream.aclose()
    await asyncio.sleep(0)  # the stop is asked in the background
    await asyncio.sleep(0)
    assert stop_key(published[0]) in results.keys
    assert _value(dispatcher.metrics, "conveyor_streams_cancelled_total") == 1
    assert _value(dispatcher.metrics, "conveyor_streams_open") == 0
    assert events.waiting == 0 and waiter.sinks == {}


@pytest.mark.asyncio
async def test_a_cancelled_consumer_stops_the_stream_too() -> None:
    dispatcher, _, results, _, _ = _streaming()
    stream = dispatcher.stream(INFO, b"p", seconds=5.0)
    consumer = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await asyncio.sleep(0.01)
    assert any(key.startswith("conveyor:stop:") for key in results.keys)
    assert _value(dispatcher.metrics, "conveyor_streams_cancelled_total") == 1


@pytest.mark.asyncio
async def test_a_stream_without_an_end_in_time_is_a_timeout_and_is_recorded() -> None:
    dispatcher, _, results, _, _ = _streaming()
    with pytest.raises(ResultTimeout) as caught:
        async for _ in dispatcher.stream(INFO, b"p", seconds=0.05):
            pass
    task_id = caught.value.task_id
    assert task_id is not None and results.records[task_id].model == "echo"
    assert results.keys == {}  # the task goes on: nobody asked it to stop


@pytest.mark.asyncio
async def test_no_waiting_place_left_refuses_a_stream_before_publishing() -> None:
    dispatcher, channel, _, _, _ = _streaming(max_waiting=0)
    with pytest.raises(Overloaded):
        await anext(dispatcher.stream(INFO, b"p", seconds=1.0))
    assert channel.underlay.published == []


@pytest.mark.asyncio
async def test_following_an_unknown_task_is_task_not_found() -> None:
    dispatcher, *_ = _streaming()
    with pytest.raises(TaskNotFound):
        await anext(dispatcher.follow("nope"))


@pytest.mark.asyncio
async def test_keepalives_fill_quiet_times_and_cancelling_ends_the_stream() -> None:
    closed: list[str] = []

    async def slow() -> AsyncGenerator[StreamItem, None]:
        try:
            yield Restart("1-1", 2)
            await asyncio.sleep(10)
            yield StreamEnd(_done())
        finally:
            closed.append("closed")

    paced = with_keepalives(slow(), 0.02)
    assert await anext(paced) == Restart("1-1", 2)
    assert await anext(paced) is None  # quiet: a keepalive
    assert await anext(paced) is None
    consumer = asyncio.ensure_future(anext(paced))
    await asyncio.sleep(0.005)
    consumer.cancel()  # the client went away while the stream was quiet
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    await asyncio.sleep(0.01)
    assert closed == ["closed"]


@pytest.mark.asyncio
async def test_keepalives_pass_the_end_through_and_close_what_they_read() -> None:
    async def quick() -> AsyncGenerator[StreamItem, None]:
        yield StreamEnd(_done())

    assert [item async for item in with_keepalives(quick(), 1.0)] == [StreamEnd(_done())]


def _chunk(index: int) -> Chunk:
    return Chunk(f"1-{index + 1}", index, 1, b"")


@pytest.mark.asyncio
async def test_batches_hand_over_what_is_ready_at_once_in_order() -> None:
    release = asyncio.Event()

    async def burst() -> AsyncGenerator[StreamItem, None]:
        yield _chunk(0)
        await release.wait()
        for index in range(1, 6):
            yield _chunk(index)
        yield StreamEnd(_done())

    batches = batches_with_keepalives(burst(), 1.0, limit=3)
    assert await anext(batches) == [_chunk(0)]
    release.set()
    await asyncio.sleep(0.01)  # the reader runs ahead until its queue holds `limit`
    assert await anext(batches) == [_chunk(1), _chunk(2), _chunk(3)]
    rest = [item async for batch in batches for item in batch]
    assert rest == [_chunk(4), _chunk(5), StreamEnd(_done())]


@pytest.mark.asyncio
async def test_batches_raise_an_error_after_the_items_before_it() -> None:
    async def failing() -> AsyncGenerator[StreamItem, None]:
        yield _chunk(0)
        yield _chunk(1)
        raise ResultTimeout("too slow", model="m", task_id=TASK)

    batches = batches_with_keepalives(failing(), 1.0)
    await asyncio.sleep(0.01)
    assert await anext(batches) == [_chunk(0), _chunk(1)]
    with pytest.raises(ResultTimeout):
        await anext(batches)


@pytest.mark.asyncio
async def test_closing_batches_ends_a_stream_waiting_for_room() -> None:
    closed: list[str] = []

    async def endless() -> AsyncGenerator[StreamItem, None]:
        try:
            index = 0
            while True:
                yield _chunk(index)
                index += 1
        finally:
            closed.append("closed")

    batches = batches_with_keepalives(endless(), 1.0, limit=2)
    assert await anext(batches) == [_chunk(0), _chunk(1)]
    await asyncio.sleep(0.01)  # the reader waits for room with two more queued
    await batches.aclose()
    assert closed == ["closed"]
