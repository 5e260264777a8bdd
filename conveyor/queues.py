"""A model version's queues on RabbitMQ: the only place their arguments are written.

Workers declare their model version's queues (they own them); gateways only publish, with the
``mandatory`` flag, so a message for a queue that does not exist comes back as an error instead
of vanishing. See ``conveyor.protocol`` for the names and docs/protocol.md for the reasons:

- the durable lane (``durable_queue``) is a quorum queue: replicated on a cluster, persistent,
  with a delivery limit; a task that reaches it is dead-lettered to the model's dead-letter
  queue with the reason, instead of being delivered forever;
- the fast lane (``sync_queue``) is a transient classic queue with message priorities: the caller
  of a synchronous request waits for the answer and retries on an error, so the tasks need no
  disk, and an expired task is dropped by the broker before any worker sees it;
- every lane has a length limit and rejects publishes past it, so the gateway can answer 429 at
  once instead of letting a backlog grow past every caller's timeout;
- the delay lane (``delay_queue``, one quorum queue per delay) holds tasks waiting to be retried:
  each queue's messages expire after its one TTL, so they leave in the order they came, and are
  dead-lettered to the default exchange with the routing key they were published with, the name
  of the durable lane they go back to. A task reaches a delay queue through the exchange of its
  delay (``delay_exchange``), to which the queue is bound with the names of its version's two
  durable lanes. Dead-lettering is at-least-once: a task whose lane is full waits until it
  has room, instead of being dropped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from conveyor.protocol import (
    DEAD_LETTER_EXCHANGE,
    MAX_PRIORITY,
    dead_letter_queue,
    delay_exchange,
    delay_queue,
    durable_queue,
    legacy_queue,
    sync_queue,
)

__all__ = ["ModelQueues", "QueueLimits", "declare_legacy_queue", "declare_model_queues"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueLimits:
    """The tunable limits of a model's queues."""

    max_queued: int = 1000
    """Ready tasks per lane; past it the broker refuses the publish (the gateway answers 429)."""

    max_deliveries: int = 3
    """Deliveries of a task whose worker died each time before it is dead-lettered."""


@dataclass(frozen=True)
class ModelQueues:
    """The declared queues of one model version (what a worker consumes)."""

    durable: AbstractQueue
    durable_high: AbstractQueue
    sync: AbstractQueue
    dead_letters: AbstractQueue
    delays: dict[int, AbstractQueue] = field(default_factory=dict)
    """The delay lane: a queue per delay (milliseconds) the version's retries wait."""


def durable_arguments(model: str, limits: QueueLimits) -> dict[str, Any]:
    """Arguments of a durable lane: quorum, length limit, delivery limit, dead-lettering."""
    return {
        "x-queue-type": "quorum",
        "x-max-length": limits.max_queued,
        "x-overflow": "reject-publish",
        # The worker dead-letters a task itself once it has been delivered ``max_deliveries``
        # times (so its caller learns why); the broker's limit is the net under that.
        "x-delivery-limit": limits.max_deliveries + 2,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": model,
    }


def sync_arguments(limits: QueueLimits) -> dict[str, Any]:
    """Arguments of a fast lane: priorities and a length limit."""
    return {
        "x-max-priority": MAX_PRIORITY,
        "x-max-length": limits.max_queued,
        "x-overflow": "reject-publish",
    }


DEAD_LETTER_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}


def delay_arguments(delay_ms: int) -> dict[str, Any]:
    """Arguments of a delay queue: quorum, every message expiring after ``delay_ms``, then
    dead-lettered (at least once) to the default exchange by its own routing key."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-strategy": "at-least-once",
        # At-least-once dead-lettering needs it; the queue has no length limit to reach (it
        # holds tasks its lanes took in already).
        "x-overflow": "reject-publish",
    }


async def declare_model_queues(
    connection: AbstractConnection,
    channel: AbstractChannel,
    model: str,
    version: str,
    limits: QueueLimits,
    delays_ms: Sequence[int] = (),
) -> ModelQueues:
    """Declare (idempotently) every queue of ``model`` ``version`` and the dead-letter route,
    and a delay queue for each of ``delays_ms`` (``conveyor.protocol.DELAY_BUCKETS_MS``), on
    ``channel`` (``connection`` opens throw-away channels to probe existing queues)."""
    exchange = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, "direct", durable=True)
    dead = await _declare(
        connection, channel, dead_letter_queue(model), True, DEAD_LETTER_ARGUMENTS
    )
    await dead.bind(exchange, routing_key=model)
    durable = durable_arguments(model, limits)
    return ModelQueues(
        durable=await _declare(connection, channel, durable_queue(model, version), True, durable),
        durable_high=await _declare(
            connection, channel, durable_queue(model, version, high=True), True, durable
        ),
        sync=await _declare(
            connection, channel, sync_queue(model, version), False, sync_arguments(limits)
        ),
        dead_letters=dead,
        delays={
            delay: await _declare_delay(connection, channel, model, version, delay)
            for delay in delays_ms
        },
    )


async def _declare_delay(
    connection: AbstractConnection,
    channel: AbstractChannel,
    model: str,
    version: str,
    delay_ms: int,
) -> AbstractQueue:
    """Declare the delay queue of ``delay_ms`` and its exchange, and route the version's
    durable lanes' names to it."""
    exchange = await channel.declare_exchange(delay_exchange(delay_ms), "direct", durable=True)
    queue = await _declare(
        connection, channel, delay_queue(model, version, delay_ms), True, delay_arguments(delay_ms)
    )
    for high in (False, True):
        await queue.bind(exchange, routing_key=durable_queue(model, version, high=high))
    return queue


async def declare_legacy_queue(
    connection: AbstractConnection, channel: AbstractChannel, model: str
) -> AbstractQueue | None:
    """The classic queue of earlier releases, if the broker still holds it (to drain it)."""
    probe = await connection.channel()
    try:
        await probe.declare_queue(legacy_queue(model), passive=True)
    except ChannelNotFoundEntity:
        return None
    finally:
        with contextlib.suppress(Exception):
            await probe.close()
    return await channel.declare_queue(legacy_queue(model), passive=True)


async def _declare(
    connection: AbstractConnection,
    channel: AbstractChannel,
    name: str,
    durable: bool,
    arguments: dict[str, Any],
) -> AbstractQueue:
    """Declare ``name``; if the broker holds it with other arguments, use it as it is.

    RabbitMQ refuses a declaration whose arguments differ from the existing queue's, and closes
    the channel. So the declaration is tried on a throw-away channel first. A worker of a new
    release must still serve the old queue: when it is refused, this logs what differs and
    declares passively; an operator moves the queue to new limits with a policy, or drains it
    (docs/protocol.md). Otherwise the queue is declared with its arguments on ``channel``, so a
    reconnecting channel declares it again the same way (a transient queue is gone after a
    broker restart).
    """
    probe = await connection.channel()
    try:
        await probe.declare_queue(name, durable=durable, arguments=arguments)
    except ChannelPreconditionFailed as e:
        logger.warning(
            "queue %s exists with other arguments than %s (%s); using it as it is",
            name,
            arguments,
            e,
        )
        return await channel.declare_queue(name, passive=True)
    finally:
        with contextlib.suppress(Exception):
            await probe.close()
    return await channel.declare_queue(name, durable=durable, arguments=arguments)
