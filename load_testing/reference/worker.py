"""The reference worker: consume, echo, ``SET`` + ``PUBLISH`` the result, acknowledge.

A message whose content type is ``application/octet-stream`` is echoed unchanged (the bare
transport of any bytes); any other is the seed's JSON echo.

Run with ``python -m load_testing.reference.worker`` (see the package doc).
"""

from __future__ import annotations

import asyncio
import signal

import aio_pika
import orjson
import redis.asyncio as aioredis
from aio_pika.abc import AbstractIncomingMessage

from load_testing.reference import names
from load_testing.reference.names import OPAQUE

__all__ = ["main"]

PREFETCH = 64


def echo(body: bytes) -> bytes:
    """The model: ``{"data": x}`` -> ``{"reply": "Processed message: x"}``."""
    data = orjson.loads(body).get("data", "")
    return orjson.dumps({"reply": f"Processed message: {data}"})


async def serve(stop: asyncio.Event) -> None:
    """Consume the reference queue until ``stop`` is set."""
    client = aioredis.Redis.from_url(names.redis_url())
    connection = await aio_pika.connect_robust(names.amqp_url())
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.declare_queue(names.queue(), durable=False)
    results = names.channel()
    ttl = names.result_ttl()

    async def on_message(message: AbstractIncomingMessage) -> None:
        task_id = message.message_id or ""
        result = message.body if message.content_type == OPAQUE else echo(message.body)
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(f"{results}:{task_id}", result, ex=ttl)
            pipe.publish(results, task_id.encode() + b" " + result)
            await pipe.execute()
        await message.ack()

    tag = await queue.consume(on_message)
    try:
        await stop.wait()
    finally:
        await queue.cancel(tag)
        await connection.close()
        await client.aclose()


def main() -> None:
    """Serve until SIGTERM or SIGINT."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
