"""RabbitMQ for the gateway and the workers: connecting, and declaring a model's queue.

``aio_pika.connect_robust`` reconnects on its own once connected, but its first connection
fails at once when the broker is not there yet (a compose stack starting, a broker restarting).
Services call ``connect_amqp`` instead: it retries with exponential backoff until ``wait_seconds``
seconds have passed, then raises ``BrokerUnavailable``.

``declare_model_queue`` is the only place where a model queue's arguments are written; both
sides call it, so they can never disagree.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from aiormq.exceptions import AMQPError, ChannelPreconditionFailed

from conveyor.errors import BrokerUnavailable
from conveyor.protocol import queue_name

logger = logging.getLogger(__name__)

_FIRST_DELAY = 0.5
_MAX_DELAY = 5.0


def redact(url: str) -> str:
    """Return ``url`` without its password, for log lines and error messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


async def connect_amqp(url: str, wait_seconds: float) -> AbstractRobustConnection:
    """Connect to RabbitMQ at ``url``, retrying for up to ``wait_seconds`` seconds."""
    deadline = time.monotonic() + wait_seconds
    delay = _FIRST_DELAY
    while True:
        try:
            return await aio_pika.connect_robust(url)
        except (AMQPError, OSError) as e:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"RabbitMQ at {redact(url)} did not answer within {wait_seconds:g} s: {e}"
                ) from e
            logger.warning("RabbitMQ at %s not reachable (%s); retrying", redact(url), e)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)


MODEL_QUEUE_ARGUMENTS: Final[Mapping[str, Any]] = {}
"""Arguments of every model queue (none yet: a durable classic queue)."""


async def declare_model_queue(channel: AbstractChannel, model: str) -> AbstractQueue:
    """Declare ``model``'s durable queue with ``MODEL_QUEUE_ARGUMENTS`` and return it.

    A broker may already hold the queue with other arguments (declared by an older release):
    RabbitMQ then refuses the declaration and closes the channel. Rather than fail, this logs
    what differs and uses the queue as it is (a passive declaration on a fresh channel); the
    queue keeps working, and an operator can move it to the new arguments with a policy or by
    draining it (docs/protocol.md).
    """
    name = queue_name(model)
    try:
        return await channel.declare_queue(
            name, durable=True, arguments=dict(MODEL_QUEUE_ARGUMENTS)
        )
    except ChannelPreconditionFailed as e:
        logger.warning(
            "queue %s exists with other arguments than %s (%s); using it as it is",
            name,
            dict(MODEL_QUEUE_ARGUMENTS),
            e,
        )
    await channel.reopen()
    return await channel.declare_queue(name, passive=True)
