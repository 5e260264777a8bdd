"""Streamed tasks in the worker, over a fake writer: the chunk flusher appends the pieces of
all streams in flushes (pieces yielded while one is on the wire share the next); a stream's
pieces go in order, bounded (a model faster than the writes waits), and are all appended
before its result; a stop answer, the piece bound and the deadline close the model's generator
and end the task CANCELLED, MODEL_ERROR, DEADLINE_EXCEEDED; model errors are the task's as
usual; a piece that cannot be written returns the task to its queue; streamed tasks never run
in a model batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import ClassVar

import pytest
from google.protobuf.message import Message

from conveyor.streams import AppendOutcome, ChunkAppend
from proto import model_a_pb2, task_pb2
from worker_base import InvalidRequest, MessageDescriptor, Model, RetryableError, Settings, Worker
from worker_base.chunk_flush import ChunkFlusher, ChunkWriteFailed
from worker_base.settle import Settler
from worker_base.streaming import (
    StreamDeadline,
    StreamRun,
    StreamStopped,
    StreamTooLong,
)
from worker_base.tests.fakes import Delivered, task_runner


class Writer:
    """``ChunkWriter.append``, recorded: each call's pieces as ``task:index:payload``. ``gate``
    holds a call on the wire until set; ``stop_after`` answers stop for a task's pieces from
    that index on; ``fail`` raises."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.stop_after: dict[str, int] = {}
        self.fail = False
        self.fail_next = 0
        self.on_wire = 0

    async def append(self, items: Sequence[ChunkAppend]) -> list[AppendOutcome]:
        self.on_wire += 1
        try:
            await self.gate.wait()
            if self.fail or self.fail_next:
                self.fail_next = max(0, self.fail_next - 1)
                raise ConnectionError("Redis is gone")
            self.calls.append([f"{i.task.task_id}:{i.index}:{i.payload.decode()}" for i in items])
            return [
                AppendOutcome(
                    f"1-{item.index}",
                    item.index >= self.stop_after.get(item.task.task_id, 1 << 30),
                )
                for item in items
            ]
        finally:
            self.on_wire -= 1

    @property
    def written(self) -> list[str]:
        return [piece for call in self.calls for piece in call]


def _item(task_id: str, index: int) -> ChunkAppend:
    return ChunkAppend(task_pb2.Task(task_id=task_id), str(index).encode(), index)


# The flusher.


@pytest.mark.asyncio
async def test_a_lone_piece_is_written_at_once_and_answered() -> None:
    writer = Writer()
    flusher = ChunkFlusher(writer.append)
    outcome = await flusher.add(_item("a", 0))
    assert outcome == AppendOutcome("1-0", False)
    assert writer.calls == [["a:0:0"]]


@pytest.mark.asyncio
async def test_pieces_handed_over_during_a_flush_share_the_next_in_order() -> None:
    writer = Writer()
    writer.gate.clear()
    flusher = ChunkFlusher(writer.append)
    first = flusher.add(_item("a", 0))
    await asyncio.sleep(0)
    assert writer.on_wire == 1
    later = [flusher.add(_item(task, index)) for index in (1, 2) for task in ("a", "b")]
    writer.gate.set()
    await asyncio.gather(first, *later)
    assert writer.calls == [["a:0:0"], ["a:1:1", "b:1:1", "a:2:2", "b:2:2"]]


@pytest.mark.asyncio
async def test_a_flush_takes_at_most_max_flush_pieces() -> None:
    writer = Writer()
    flusher = ChunkFlusher(writer.append, max_flush=3)
    await asyncio.gather(*(flusher.add(_item("a", i)) for i in range(7)))
    assert [len(call) for call in writer.calls] == [3, 3, 1]
    assert writer.written == [f"a:{i}:{i}" for i in range(7)]


@pytest.mark.asyncio
async def test_a_failed_flush_fails_its_pieces_and_every_later_piece_of_their_tasks() -> None:
    writer = Writer()
    writer.gate.clear()
    flusher = ChunkFlusher(writer.append)
    first = flusher.add(_item("a", 0))
    await asyncio.sleep(0)
    later_a, other = flusher.add(_item("a", 1)), flusher.add(_item("b", 0))
    writer.fail_next = 1
    writer.gate.set()
    with pytest.raises(ChunkWriteFailed):
        await first
    with pytest.raises(ChunkWriteFailed, match="earlier piece"):
        await later_a
    assert (await other).event_id == "1-0"
    assert writer.written == ["b:0:0"]  # a's later piece was never written: no hole
    flusher.discard("a")
    await flusher.add(_item("a", 0))
    assert writer.written[-1] == "a:0:0"


@pytest.mark.asyncio
async def test_close_fails_what_is_not_answered() -> None:
    writer = Writer()
    writer.gate.clear()
    flusher = ChunkFlusher(writer.append)
    pieces = [flusher.add(_item("a", i)) for i in range(3)]
    await asyncio.sleep(0)
    await flusher.close()
    for piece in pieces:
        with pytest.raises(ChunkWriteFailed, match="stopping"):
            await piece


# One stream's run.


class Chars(Model):
    """Streams ``data`` one character a piece; ``"!"`` raises after the pieces before it,
    ``"?"`` raises RetryableError, ``"~"`` sleeps a long time, ``"#"`` yields a wrong type.
    ``yielded`` counts pieces yielded; ``closed`` whether the generator's ``finally`` ran."""

    name = "chars"
    max_batch_size = 8
    retry_on: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self) -> None:
        self.yielded = 0
        self.closed = False
        self.batches: list[int] = []

    async def process_stream(self, body: bytes) -> AsyncIterator[Message]:
        data = model_a_pb2.ModelARequest.FromString(body).data
        try:
            if data == "invalid":
                raise InvalidRequest("no", field="data")
            for char in data:
                if char == "!":
                    raise ValueError("broken mid-stream")
                if char == "?":
                    raise RetryableError("try again")
                if char == "~":
                    await asyncio.sleep(60)
                if char == "#":
                    yield model_a_pb2.ModelARequest(data="wrong")
                    continue
                self.yielded += 1
                yield model_a_pb2.ModelAResponse(reply=char)
        finally:
            self.closed = True

    async def process_batch(self, bodies: Sequence[bytes]) -> Sequence[Message | Exception]:
        self.batches.append(len(bodies))
        return [model_a_pb2.ModelAResponse(reply="batched") for _ in bodies]

    def get_request_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelARequest.DESCRIPTOR

    def get_response_format(self) -> MessageDescriptor:
        return model_a_pb2.ModelAResponse.DESCRIPTOR


def _task(
    data: str, task_id: str = "s", deadline_ms: int = 0, stream: bool = True
) -> task_pb2.Task:
    return task_pb2.Task(
        task_id=task_id,
        model="chars_test",
        version="1",
        payload=model_a_pb2.ModelARequest(data=data).SerializeToString(),
        result_key=f"k:{task_id}",
        reply_channel="conveyor:reply:g",
        chunk_channel="conveyor:chunks:g" if stream else "",
        events_key=f"conveyor:events:{task_id}" if stream else "",
        stream=stream,
        deadline_unix_ms=deadline_ms,
    )


def _run(model: Model, writer: Writer, max_chunks: int = 100, window: int = 4) -> StreamRun:
    return StreamRun(model, ChunkFlusher(writer.append), max_chunks, window=window)


def _payloads(writer: Writer) -> list[str]:
    return [piece.split(":", 2)[2] for piece in writer.written]


@pytest.mark.asyncio
async def test_pieces_go_in_order_and_the_answer_is_them_combined() -> None:
    writer = Writer()
    model = Chars()
    answer = await _run(model, writer).run(_task("hello"))
    assert answer == model_a_pb2.ModelAResponse(reply="hello")
    assert [p.split(":")[1] for p in writer.written] == ["0", "1", "2", "3", "4"]
    assert (
        writer.written[0]
        == "s:0:" + model_a_pb2.ModelAResponse(reply="h").SerializeToString().decode()
    )
    assert model.closed


@pytest.mark.asyncio
async def test_every_piece_is_written_before_the_run_returns() -> None:
    writer = Writer()
    writer.gate.clear()
    running = asyncio.create_task(_run(Chars(), writer).run(_task("ab")))
    await asyncio.sleep(0.05)
    assert not running.done()
    writer.gate.set()
    await running
    assert len(writer.written) == 2


@pytest.mark.asyncio
async def test_a_model_faster_than_the_writes_waits_at_its_yield() -> None:
    writer = Writer()
    writer.gate.clear()
    model = Chars()
    running = asyncio.create_task(_run(model, writer, window=4).run(_task("x" * 50)))
    await asyncio.sleep(0.05)
    assert model.yielded <= 4 + 1  # the window, and the piece it waits to hand over
    writer.gate.set()
    assert await running == model_a_pb2.ModelAResponse(reply="x" * 50)
    assert len(writer.written) == 50


@pytest.mark.asyncio
async def test_a_stop_answer_closes_the_generator_within_a_piece() -> None:
    writer = Writer()
    writer.stop_after["s"] = 3
    model = Chars()
    with pytest.raises(StreamStopped, match="the client stopped the stream"):
        await _run(model, writer, window=4).run(_task("abcdefghijklmnop"))
    assert model.closed
    # Piece 3's write answered stop: the next piece yielded is not appended.
    assert len(writer.written) == 4
    assert model.yielded == 5


@pytest.mark.asyncio
async def test_a_stop_answer_after_the_last_piece_changes_nothing() -> None:
    writer = Writer()
    writer.stop_after["s"] = 2
    answer = await _run(Chars(), writer, window=8).run(_task("abc"))
    assert answer == model_a_pb2.ModelAResponse(reply="abc")


@pytest.mark.asyncio
async def test_the_piece_bound_closes_the_generator() -> None:
    writer = Writer()
    model = Chars()
    with pytest.raises(StreamTooLong, match=r"MAX_STREAM_CHUNKS \(3\)"):
        await _run(model, writer, max_chunks=3).run(_task("abcdef"))
    assert model.closed and len(writer.written) == 3


@pytest.mark.asyncio
async def test_the_deadline_stops_a_stream() -> None:
    writer = Writer()
    model = Chars()
    deadline = _now_ms() + 100
    with pytest.raises(StreamDeadline, match="2 pieces"):
        await _run(model, writer).run(_task("ab~c", deadline_ms=deadline))
    assert model.closed and len(writer.written) == 2


@pytest.mark.asyncio
async def test_a_model_error_comes_after_the_pieces_before_it() -> None:
    writer = Writer()
    writer.gate.clear()
    running = asyncio.create_task(_run(Chars(), writer).run(_task("ab!c")))
    await asyncio.sleep(0.02)
    assert not running.done()  # the error waits for the pieces' writes
    writer.gate.set()
    with pytest.raises(ValueError, match="broken mid-stream"):
        await running
    assert len(writer.written) == 2


@pytest.mark.asyncio
async def test_a_piece_that_cannot_be_written_ends_the_run() -> None:
    writer = Writer()
    writer.fail = True
    model = Chars()
    with pytest.raises(ChunkWriteFailed):
        await _run(model, writer).run(_task("x" * 20))
    assert model.closed


def _now_ms() -> int:
    return int(time.time() * 1000)


# The executor: a stream's end is the task's result.


def _worker(model: Model, writer: Writer, max_chunks: int = 100) -> Worker:
    worker = Worker(model, Settings(model_name="chars_test", retry_backoff_ms=100))
    worker.executor.streams = StreamRun(
        model, ChunkFlusher(writer.append), max_chunks, worker.metrics
    )
    return worker


def _sample(worker: Worker, name: str, **labels: str) -> float | None:
    return worker.metrics.registry.get_sample_value(
        name, {"model": "chars_test", "version": "1", **labels}
    )


@pytest.mark.asyncio
async def test_a_streamed_task_stores_the_pieces_combined() -> None:
    writer = Writer()
    worker = _worker(Chars(), writer)
    result = await worker.execute(_task("stream"))
    assert model_a_pb2.ModelAResponse.FromString(result.response).reply == "stream"
    assert _sample(worker, "conveyor_worker_stream_chunks_total") == 6


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "code", "message", "reason"),
    [
        ("x" * 20, task_pb2.TaskError.CANCELLED, "the client stopped the stream", "client"),
        ("abcdef", task_pb2.TaskError.MODEL_ERROR, "MAX_STREAM_CHUNKS (5)", "limit"),
        ("ab!", task_pb2.TaskError.MODEL_ERROR, "ValueError: broken mid-stream", None),
        ("invalid", task_pb2.TaskError.INVALID_ARGUMENT, "no", None),
        ("a#", task_pb2.TaskError.MODEL_ERROR, "model yielded conveyor.v1.ModelARequest", None),
    ],
)
async def test_how_a_stream_ends_is_the_tasks_error(
    data: str, code: int, message: str, reason: str | None
) -> None:
    writer = Writer()
    if reason == "client":
        writer.stop_after["s"] = 2
    worker = _worker(Chars(), writer, max_chunks=5)
    result = await worker.execute(_task(data))
    assert result.error.code == code
    assert message in result.error.message
    if reason is not None:
        assert _sample(worker, "conveyor_worker_streams_stopped_total", reason=reason) == 1


@pytest.mark.asyncio
async def test_a_stream_past_its_deadline_is_deadline_exceeded() -> None:
    worker = _worker(Chars(), Writer())
    result = await worker.execute(_task("a~", deadline_ms=_now_ms() + 100))
    assert result.error.code == task_pb2.TaskError.DEADLINE_EXCEEDED
    assert _sample(worker, "conveyor_worker_streams_stopped_total", reason="deadline") == 1


@pytest.mark.asyncio
async def test_a_retryable_failure_mid_stream_is_retried() -> None:
    worker = _worker(Chars(), Writer())
    _, retries = await worker.executor.attempt_batch([_task("ab?")], [False])
    assert list(retries) == [0]
    assert retries[0].task.attempt == 2 and retries[0].task.stream


@pytest.mark.asyncio
async def test_without_a_writer_a_stream_fails_clearly() -> None:
    worker = Worker(Chars(), Settings(model_name="chars_test"))
    result = await worker.execute(_task("a"))
    assert result.error.code == task_pb2.TaskError.MODEL_ERROR
    assert "cannot stream" in result.error.message


# The runner: streamed tasks run alone; a stream that cannot be written goes back to its queue.


async def _serve(worker: Worker, tasks: list[task_pb2.Task], done: Callable[[], bool]) -> list[str]:
    log: list[str] = []
    stored: list[task_pb2.TaskResult] = []

    async def store(items: list[tuple[task_pb2.Task, task_pb2.TaskResult]]) -> None:
        stored.extend(result for _, result in items)

    settler = Settler(store)
    runner = task_runner(worker, settler, (8, 0.05))
    for tag, task in enumerate(tasks, start=1):
        message = Delivered(log, tag, tagged=True)
        settler.opened(message)  # type: ignore[arg-type]
        await worker.scheduler.put(worker.scheduler.make(task, message, "sync"))  # type: ignore[arg-type]
    serving = asyncio.create_task(runner.serve())
    try:
        for _ in range(400):
            if done() and settler.unsettled == 0:
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError(f"not settled: {log}")
    finally:
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
    log.extend(
        f"{r.task_id}={model_a_pb2.ModelAResponse.FromString(r.response).reply}" for r in stored
    )
    return log


@pytest.mark.asyncio
async def test_streamed_tasks_never_run_in_a_model_batch() -> None:
    writer = Writer()
    model = Chars()
    worker = _worker(model, writer)
    assert worker.executor.batching
    tasks = [
        _task("p", "p1", stream=False),
        _task("xy", "s1"),
        _task("p", "p2", stream=False),
        _task("zw", "s2"),
    ]
    log = await _serve(worker, tasks, lambda: True)
    assert model.batches == [2]
    assert sorted(entry for entry in log if "=" in entry) == [
        "p1=batched",
        "p2=batched",
        "s1=xy",
        "s2=zw",
    ]
    assert writer.written[0].startswith("s1:0:") and writer.written[-1].startswith("s2:1:")


@pytest.mark.asyncio
async def test_a_stream_that_cannot_be_written_returns_to_its_queue() -> None:
    writer = Writer()
    writer.fail = True
    worker = _worker(Chars(), writer)
    log = await _serve(worker, [_task("abc", "s1")], lambda: True)
    assert log == ["requeue 1"]
