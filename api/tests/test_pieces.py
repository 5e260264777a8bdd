"""api.pieces: a stream's first item awaited before anything is sent, and restarts hidden."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest

from api.exceptions import Overloaded
from api.pieces import StreamDiverged, StreamItem, close, seamless, started
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

    def __init__(self, items: Sequence[StreamItem], error: Exception | None = None) -> None:
        self.items = items
        self.error = error
        self.closed_early = False

    async def run(self) -> AsyncIterator[StreamItem]:
        if self.error is not None:
            raise self.error
        ended = False
        try:
            for item in self.items:
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
