"""api.pieces: a stream's first item awaited before anything is sent (a client that leaves
meanwhile stops it), restarts hidden, and the SSE tail with its keepalives."""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from api.exceptions import Overloaded
from api.pieces import (
    SSE_MEDIA_TYPE,
    ClientGone,
    StreamDiverged,
    StreamEndView,
    StreamItem,
    close,
    seamless,
    sse_answer,
    started,
)
from api.streaming import SSE_KEEPALIVE
from conveyor.streams import Chunk, Restart
from proto import task_pb2

pytestmark = pytest.mark.asyncio


@dataclass(frozen=True)
class End:
    result: task_pb2.TaskResult


DONE = End(task_pb2.TaskResult(response=b"x"))
FAILED = End(task_pb2.TaskResult(error=task_pb2.TaskError(message="no")))


class Source:
    """A stream of given items that notes whether it was closed before its end."""

    def __init__(
        self, items: Sequence[StreamItem], error: Exception | None = None, gap: float = 0.0
    ) -> None:
        self.items = items
        self.error = error
        self.gap = gap
        self.closed_early = False

    async def run(self) -> AsyncIterator[StreamItem]:
        if self.error is not None:
            raise self.error
        ended = False
        try:
            for item in self.items:
                if self.gap:
                    await asyncio.sleep(self.gap)
                yield item
            ended = True
        finally:
            self.closed_early = not ended


def chunk(index: int, payload: bytes, attempt: int = 1) -> Chunk:
    return Chunk(f"{index}-{attempt}", index, attempt, payload)


async def _all(items: AsyncIterator[object]) -> list[object]:
    return [item async for item in items]


async def test_started_raises_what_comes_before_the_first_item() -> None:
    source = Source([], Overloaded("full"))
    with pytest.raises(Overloaded):
        await started(source.run())


async def test_started_yields_everything() -> None:
    items: list[StreamItem] = [chunk(0, b"a"), DONE]
    assert await _all(await started(Source(items).run())) == items


async def test_closing_early_closes_the_source() -> None:
    source = Source([chunk(0, b"a"), chunk(1, b"b"), DONE])
    stream = seamless(await started(source.run()))
    assert await anext(stream) == chunk(0, b"a")
    await close(stream)
    assert source.closed_early


async def test_a_repeated_run_is_skipped() -> None:
    items: list[StreamItem] = [
        chunk(0, b"a"), chunk(1, b"b"), Restart("r", 2),
        chunk(0, b"a", 2), chunk(1, b"b", 2), chunk(2, b"c", 2), DONE,
    ]  # fmt: skip
    got = await _all(seamless(Source(items).run()))
    assert [c.payload for c in got if isinstance(c, Chunk)] == [b"a", b"b", b"c"]
    assert got[-1] == DONE


async def test_a_restart_before_any_piece_changes_nothing() -> None:
    items: list[StreamItem] = [Restart("r", 2), chunk(0, b"a", 2), DONE]
    assert await _all(seamless(Source(items).run())) == [chunk(0, b"a", 2), DONE]


async def test_another_piece_diverges() -> None:
    items: list[StreamItem] = [
        chunk(0, b"a"), chunk(1, b"b"), Restart("r", 2), chunk(0, b"a", 2), chunk(1, b"x", 2)
    ]  # fmt: skip
    source = Source(items)
    with pytest.raises(StreamDiverged):
        await _all(seamless(source.run()))


async def test_a_shorter_run_diverges_but_a_failure_is_passed_on() -> None:
    shorter: list[StreamItem] = [chunk(0, b"a"), chunk(1, b"b"), Restart("r", 2), chunk(0, b"a", 2)]
    with pytest.raises(StreamDiverged):
        await _all(seamless(Source([*shorter, DONE]).run()))
    assert (await _all(seamless(Source([*shorter, FAILED]).run())))[-1] == FAILED


async def _left() -> None:
    """A client that has gone away already."""


async def _stays() -> None:
    """A client that stays."""
    await asyncio.Event().wait()


async def test_a_client_gone_before_the_first_item_stops_the_stream() -> None:
    source = Source([chunk(0, b"a"), DONE], gap=30.0)
    with pytest.raises(ClientGone):
        await started(source.run(), _left)
    assert source.closed_early


async def test_a_client_that_stays_gets_the_stream() -> None:
    items: list[StreamItem] = [chunk(0, b"a"), DONE]
    assert await _all(await started(Source(items, gap=0.01).run(), _stays)) == items


async def test_what_comes_before_the_first_item_is_raised_while_the_client_stays() -> None:
    with pytest.raises(Overloaded):
        await started(Source([], Overloaded("full")).run(), _stays)


async def _render(pieces: AsyncIterator[Chunk | StreamEndView]) -> AsyncGenerator[bytes, None]:
    try:
        async for item in pieces:
            yield b"data: " + (item.payload if isinstance(item, Chunk) else b"end") + b"\n\n"
    finally:
        await close(pieces)


async def test_the_sse_tail_sends_keepalives_while_no_piece_comes() -> None:
    items: list[StreamItem] = [
        chunk(0, b"a"), chunk(1, b"b"), Restart("r", 2), chunk(0, b"a", 2), chunk(1, b"b", 2),
        chunk(2, b"c", 2), DONE,
    ]  # fmt: skip
    response = await sse_answer(
        Source(items, gap=0.05).run(), _render, model=None, gone=_stays, keepalive=0.01
    )
    assert response.media_type == SSE_MEDIA_TYPE
    assert response.headers["cache-control"] == "no-cache"
    parts = [part async for part in response.body_iterator]
    assert parts[0] == b"data: a\n\n"  # the first piece at once: it was awaited before
    assert SSE_KEEPALIVE in parts
    sent = [part for part in parts if part != SSE_KEEPALIVE]
    assert sent == [b"data: a\n\n", b"data: b\n\n", b"data: c\n\n", b"data: end\n\n"]


async def test_the_sse_tail_closed_early_stops_the_stream() -> None:
    source = Source([chunk(i, b"x") for i in range(100)], gap=0.02)
    response = await sse_answer(source.run(), _render, model=None, gone=_stays, keepalive=0.005)
    body = aiter(response.body_iterator)
    assert await anext(body) == b"data: x\n\n"
    assert await anext(body) == SSE_KEEPALIVE  # waiting for the next piece
    assert response.background is not None
    await response.background()  # what the response runs once it ends, however it ends
    for _ in range(100):
        if source.closed_early:
            break
        await asyncio.sleep(0.01)
    assert source.closed_early


async def test_the_sse_tail_raises_client_gone_before_the_first_piece() -> None:
    source = Source([chunk(0, b"a"), DONE], gap=30.0)
    with pytest.raises(ClientGone):
        await sse_answer(source.run(), _render, model=None, gone=_left)
    assert source.closed_early
