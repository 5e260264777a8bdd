"""LoopWriteBuffer: writes joined per loop turn (AMQP) or per head and body (HTTP)."""

import asyncio

import pytest

from conveyor.write_buffer import LoopWriteBuffer


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 7


def _buffer(transport: FakeTransport, send_at: int | None = None) -> LoopWriteBuffer:
    return LoopWriteBuffer(transport, asyncio.get_running_loop(), send_at)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_writes_of_one_turn_leave_together_on_the_next() -> None:
    transport = FakeTransport()
    buffer = _buffer(transport)
    buffer.write(b"a")
    buffer.write(bytearray(b"b"))
    buffer.writelines([b"c", memoryview(b"d")])
    assert transport.writes == []
    await asyncio.sleep(0)
    assert transport.writes == [b"abcd"]
    buffer.write(b"e")
    await asyncio.sleep(0)
    assert transport.writes == [b"abcd", b"e"]
    assert buffer.get_write_buffer_size() == 7  # the rest is the transport's


@pytest.mark.asyncio
async def test_close_and_eof_send_what_is_held_and_abort_drops_it() -> None:
    transport = FakeTransport()
    buffer = _buffer(transport)
    buffer.write(b"last")
    buffer.write_eof()
    assert transport.writes == [b"last", b"<eof>"]
    buffer.write(b"closing")
    buffer.close()
    assert transport.writes == [b"last", b"<eof>", b"closing"]
    assert buffer.is_closing()
    await asyncio.sleep(0)  # the pending flush finds the transport closed: nothing more
    assert transport.writes == [b"last", b"<eof>", b"closing"]

    transport = FakeTransport()
    buffer = _buffer(transport)
    buffer.write(b"dropped")
    buffer.abort()
    await asyncio.sleep(0)
    assert transport.writes == [] and transport.aborted


@pytest.mark.asyncio
async def test_send_at_two_joins_a_head_with_its_body_at_once() -> None:
    transport = FakeTransport()
    buffer = _buffer(transport, send_at=2)
    buffer.write(b"head")
    assert transport.writes == []
    buffer.write(b"body")
    assert transport.writes == [b"headbody"], "sent at once, without waiting for the turn"
    buffer.write(b"chunk")
    buffer.write(b"more")
    assert transport.writes == [b"headbody", b"chunkmore"]
    buffer.write(b"end")
    await asyncio.sleep(0)  # a lone write leaves on the next turn
    assert transport.writes == [b"headbody", b"chunkmore", b"end"]


@pytest.mark.asyncio
async def test_a_head_alone_goes_out_on_the_next_turn_or_at_close() -> None:
    transport = FakeTransport()
    buffer = _buffer(transport, send_at=2)
    buffer.write(b"head")
    await asyncio.sleep(0)
    assert transport.writes == [b"head"]

    transport = FakeTransport()
    buffer = _buffer(transport, send_at=2)
    buffer.write(b"head")
    buffer.close()
    assert transport.writes == [b"head"] and transport.closed
    await asyncio.sleep(0)  # the pending flush does not write to a closed transport
    assert transport.writes == [b"head"]
