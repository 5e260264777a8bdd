"""LoopWriteBuffer: an AMQP connection's writes of one loop turn leave joined, in order."""

import asyncio

import pytest

from conveyor.amqp import LoopWriteBuffer


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


def _buffer(transport: FakeTransport) -> LoopWriteBuffer:
    return LoopWriteBuffer(transport, asyncio.get_running_loop())  # type: ignore[arg-type]


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
    buffer.write(b"held")
    assert buffer.get_write_buffer_size() == 4 + 7  # held here, and the transport's


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
