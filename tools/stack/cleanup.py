"""Removing what a stack created on the brokers: its model queues and its Redis keys."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import aio_pika
import redis

__all__ = ["delete_keys", "delete_queues"]


async def _delete_queues(amqp_url: str, names: list[str]) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        for name in names:
            # A failed delete closes its channel: one channel per queue.
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
    finally:
        await connection.close()


def delete_queues(amqp_url: str, names: Iterable[str]) -> None:
    """Delete the queues ``names`` (those that exist) at ``amqp_url``."""
    queues = list(names)
    if queues:
        asyncio.run(_delete_queues(amqp_url, queues))


def delete_keys(redis_url: str, pattern: str) -> int:
    """Delete the Redis keys matching ``pattern`` (e.g. ``test:abc:*``); return how many."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=pattern, count=500))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()
