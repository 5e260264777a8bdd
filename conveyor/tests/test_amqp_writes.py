"""One socket write per turn of the loop for AMQP connections (``conveyor.amqp``'s transport
factory); the buffer itself is tested in test_write_buffer.py."""

import asyncio
import os
import uuid

import aio_pika
import pytest

from conveyor.amqp import ClusterTransportFactory, LoopWriteBuffer, connect_amqp

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.mark.asyncio
async def test_concurrent_publishes_through_a_real_broker_arrive_whole_and_in_order() -> None:
    connection = await connect_amqp(AMQP_URL, 10)
    factory = connection.kwargs["transport_factory"]
    assert isinstance(factory, ClusterTransportFactory)
    assert factory.opened == 1
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"test.writes.{uuid.uuid4().hex}", exclusive=True)
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


@pytest.mark.asyncio
async def test_the_publishes_of_one_turn_share_socket_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiormq writes one publish of a channel at a time (its lock is held until the frames are
    written), so the writes that share a turn are those of different channels, as the gateway's
    publishing channels, and acknowledgements."""
    writes_per_send: list[int] = []
    flush = LoopWriteBuffer.flush

    def counted(buffer: LoopWriteBuffer) -> None:
        if buffer.held and not buffer.transport.is_closing():
            writes_per_send.append(len(buffer.held))
        flush(buffer)

    monkeypatch.setattr(LoopWriteBuffer, "flush", counted)
    connection = await connect_amqp(AMQP_URL, 10)
    try:
        channels = [await connection.channel(publisher_confirms=True) for _ in range(8)]
        queue = await channels[0].declare_queue(f"test.writes.{uuid.uuid4().hex}", exclusive=True)
        writes_per_send.clear()
        await asyncio.gather(
            *(
                channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue.name)
                for _ in range(40)
                for channel in channels
            )
        )
        writes, sends = sum(writes_per_send), len(writes_per_send)
        print(f"publishes: {writes} frame writes in {sends} socket writes")
        assert writes >= 320  # a publish is one write (method, header and body)
        assert sends * 4 <= writes, writes_per_send
    finally:
        await connection.close()
