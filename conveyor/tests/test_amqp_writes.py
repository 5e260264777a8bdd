"""One socket write per turn of the loop for AMQP connections (``conveyor.amqp_writes``); the
buffer itself is tested in test_write_buffer.py."""

import asyncio
import os
import uuid

import aio_pika
import pytest

from conveyor.amqp import connect_amqp
from conveyor.amqp_writes import CoalescingFactory

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


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
