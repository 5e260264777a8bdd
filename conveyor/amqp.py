"""Connecting to RabbitMQ, for the gateway and the workers.

``aio_pika.connect_robust`` reconnects on its own once connected, but its first connection
fails at once when the broker is not there yet (a compose stack starting, a broker restarting).
Services call ``connect_amqp`` instead: it retries with exponential backoff until ``wait_seconds``
seconds have passed, then raises ``BrokerUnavailable``.
"""

import asyncio
import logging
import time

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError

from conveyor.errors import BrokerUnavailable

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
