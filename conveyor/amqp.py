"""Connecting to RabbitMQ, for the gateway and the workers.

``aio_pika.connect_robust`` reconnects on its own once connected, but its first connection
fails at once when the broker is not there yet (a compose stack starting, a broker restarting).
Services call ``connect_amqp`` instead: it retries with exponential backoff until ``wait_seconds``
seconds have passed, then raises ``BrokerUnavailable``.

Once connected, the robust connection retries every ``RECONNECT_INTERVAL`` seconds after losing
the broker (aio-pika waits 5 s by default, so a broker back after a restart went unused for up
to 5 s); its channels, queues and consumers are restored with it. aio-pika and aiormq log
every attempt (a warning, an error and a traceback each, twice a second while the broker is
away); those lines are dropped, and ``connect_amqp`` logs one warning when the broker is lost
and one when it is back.
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

RECONNECT_INTERVAL = 0.5
"""Seconds between reconnection attempts of a connection that lost its broker."""

_NOISY_LOGGERS = ("aiormq.connection", "aio_pika.robust_connection", "aio_pika.tools")
_NOISE = (
    "Cancelling cause reader exited abnormally",
    "error when creating transport",
    "Connection attempt to",
    "closed. Reconnecting after",
    "Callback <OneShotCallback",
)


class _ReconnectNoise(logging.Filter):
    """Drops aio-pika's and aiormq's per-attempt lines about a lost or refused connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _NOISE)


_noise_filter = _ReconnectNoise()


def _quiet_reconnects() -> None:
    for name in _NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        if _noise_filter not in noisy.filters:
            noisy.addFilter(_noise_filter)


class _OutageLog:
    """One warning when the connection is lost, one when it is back."""

    def __init__(self, url: str) -> None:
        self.url = redact(url)
        self.lost_at: float | None = None

    def closed(self, connection: object, error: BaseException | None = None) -> None:
        if self.lost_at is None and error is not None:
            self.lost_at = time.monotonic()
            logger.warning(
                "RabbitMQ at %s lost (%s); reconnecting every %g s",
                self.url,
                error,
                RECONNECT_INTERVAL,
            )

    def reconnected(self, connection: object) -> None:
        lost = "" if self.lost_at is None else f" after {time.monotonic() - self.lost_at:.1f} s"
        self.lost_at = None
        logger.warning("RabbitMQ at %s back%s", self.url, lost)


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
    _quiet_reconnects()
    while True:
        try:
            connection = await aio_pika.connect_robust(url, reconnect_interval=RECONNECT_INTERVAL)
        except (AMQPError, OSError) as e:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"RabbitMQ at {redact(url)} did not answer within {wait_seconds:g} s: {e}"
                ) from e
            logger.warning("RabbitMQ at %s not reachable (%s); retrying", redact(url), e)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)
            continue
        outage = _OutageLog(url)
        connection.close_callbacks.add(outage.closed)
        connection.reconnect_callbacks.add(outage.reconnected)
        return connection
