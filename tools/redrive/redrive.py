"""Moving a model's dead-lettered tasks back to the queues they came from.

A task lands in ``conveyor.dead.<model>`` after its workers died running it ``MAX_DELIVERIES``
times; its result reads ``failed`` with code ``dead_lettered``. Once the model is fixed, a
re-drive takes each dead letter (oldest first), clears that result, and publishes the task
again to its version's durable lane, where it runs as if new (its delivery count starts over).

Per task, in this order, so nothing is lost if the re-drive stops half-way:

1. a task whose stored result is not ``DEAD_LETTERED`` (cancelled, or answered some other way)
   is not run again: its dead letter is dropped and counted as ``skipped``;
2. the ``DEAD_LETTERED`` result is removed, and the task's deadline, if it passed, is moved to
   now plus the time it was originally given;
3. the task is published (persistent, confirmed, ``mandatory``) to its version's durable lane;
4. only then is the dead letter acknowledged. If the publish fails, the result is put back and
   the dead letter returned to its queue, and the re-drive stops with the reason.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import aio_pika
import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq.exceptions import AMQPError, ChannelNotFoundEntity
from google.protobuf.message import DecodeError

from conveyor.errors import ConveyorError
from conveyor.protocol import (
    HIGH_PRIORITY,
    TASK_CONTENT_TYPE,
    dead_letter_queue,
    durable_queue,
    running_key,
)
from conveyor.results import now_ms, parse_result
from proto import task_pb2

__all__ = ["RedriveError", "RedriveReport", "redrive"]


class RedriveError(ConveyorError):
    """A dead letter could not be moved back (it stays in the dead-letter queue)."""

    code = "redrive_failed"


@dataclass
class RedriveReport:
    """What a re-drive did: tasks moved back, dead letters dropped, dead letters left."""

    model: str
    moved: int = 0
    skipped: int = 0
    left: int = 0


async def redrive(
    amqp_url: str, redis_url: str, model: str, limit: int | None = None
) -> RedriveReport:
    """Move up to ``limit`` (default: all) dead letters of ``model`` back to their queues."""
    report = RedriveReport(model)
    connection = await aio_pika.connect(amqp_url)
    client = aioredis.from_url(redis_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            dead = await channel.declare_queue(dead_letter_queue(model), passive=True)
        except ChannelNotFoundEntity as e:
            raise RedriveError(f"model {model!r} has no dead-letter queue") from e
        while limit is None or report.moved + report.skipped < limit:
            message = await dead.get(no_ack=False, fail=False)
            if message is None:
                break
            if await _move(channel, client, message):
                report.moved += 1
            else:
                report.skipped += 1
        await channel.close()  # a synchronous close: the broker has taken every ack before it
        counting = await connection.channel()
        declared = await counting.declare_queue(dead_letter_queue(model), passive=True)
        report.left = declared.declaration_result.message_count or 0
    finally:
        with contextlib.suppress(Exception):
            await connection.close()
        await client.aclose()
    return report


async def _move(
    channel: AbstractChannel, client: aioredis.Redis, message: AbstractIncomingMessage
) -> bool:
    """Re-publish one dead letter; False when it was dropped as already answered."""
    task = task_pb2.Task()
    try:
        task.ParseFromString(message.body)
    except DecodeError as e:
        await message.nack(requeue=True)
        raise RedriveError("a dead letter is not a conveyor.v1.Task; left in place") from e
    stored = await client.get(task.result_key)
    if stored is not None:
        result = parse_result(stored, task.task_id)
        if result.WhichOneof("outcome") != "error" or (
            result.error.code != task_pb2.TaskError.DEAD_LETTERED
        ):
            await message.ack()
            return False
    if task.deadline_unix_ms and task.deadline_unix_ms <= now_ms():
        allowance = max(task.deadline_unix_ms - task.created_unix_ms, 1000)
        task.deadline_unix_ms = now_ms() + allowance
    await client.delete(task.result_key, running_key(task.task_id))
    queue = durable_queue(task.model, task.version, high=task.priority >= HIGH_PRIORITY)
    try:
        await channel.default_exchange.publish(
            aio_pika.Message(
                task.SerializeToString(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=TASK_CONTENT_TYPE,
                message_id=task.task_id,
                priority=task.priority,
            ),
            routing_key=queue,
            mandatory=True,
        )
    except (AMQPError, OSError) as e:
        if stored is not None:
            await client.set(task.result_key, stored, ex=task.result_ttl_seconds or None, nx=True)
        with contextlib.suppress(AMQPError, OSError):
            await message.nack(requeue=True)
        raise RedriveError(f"could not publish task {task.task_id} to {queue}: {e!r}") from e
    await message.ack()
    return True
