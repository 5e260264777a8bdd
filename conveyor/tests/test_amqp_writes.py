"""One socket write per turn of the loop for AMQP connections (``conveyor.amqp_writes``)."""

import asyncio
import os
import uuid

import aio_pika
import pytest

from conveyor.amqp import connect_amqp
from conveyor.amqp_writes import CoalescingFactory, LoopWriteBuffer

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


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


@pytest.mark.asyncio
async def test_writes_of_one_turn_leave_together_on_the_next() -> None:
    transport = FakeTransport()
    buffer = LoopWriteBuffer(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
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
    loop = asyncio.get_running_loop()
    transport = FakeTransport()
    buffer = LoopWriteBuffer(transport, loop)  # type: ignore[arg-type]
    buffer.write(b"last")
    buffer.write_eof()
    assert transport.writes == [b"last", b"<eof>"]
    buffer.write(b"closing")
    buffer.close()
    assert transport.writes == [b"last", b"<eof>", b"closing"]
    await asyncio.sleep(0)  # the pending flush finds the transport closed: nothing more
    assert transport.writes == [b"last", b"<eof>", b"closing"]

    transport = FakeTransport()
    buffer = LoopWriteBuffer(transport, loop)  # type: ignore[arg-type]
    buffer.write(b"dropped")
    buffer.abort()
    await asyncio.sleep(0)
    assert transport.writes == [] and transport.aborted


@pytest.mark.asyncio
async def test_concurrent_publishes_through_a_real_broker_arrive_whole_and_in_order() -> None:
    connection = await connect_amqp(AMQP_URL, 10)
    factory = connection.kwargs["transport_factory"]
    assert isinstance(factory, CoalescingFactory)
    assert factory.opened == 1
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"test.writes.{uuid.uuid4().hex}", auto_delete=True)
        bodies = [f"message {n} ".encode() * (1 + n % 50) for n in range(300)]
        # All published in one turn: their frames leave in a few writes, each confirmed.
        await asyncio.gather(
            *(
                channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue.name)
                for body in bodies
            )
        )
        received: list[bytes] = []
        async with queue.iterator() as messages:
            async for message in messages:
                received.append(message.body)
                await message.ack()
                if len(received) == len(bodies):
                    break
        assert received == bodies
    finally:
        await connection.close()
