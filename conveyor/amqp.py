"""Connecting to RabbitMQ, for the gateway and the workers.

``AMQP_URL`` names one node or several, comma-separated (the nodes of one cluster):
``amqp://u:p@node1:5672/,amqp://u:p@node2:5672/``. ``connect_amqp`` connects to the first node
that answers, trying them in order and retrying with exponential backoff until ``wait_seconds``
seconds have passed, then raises ``BrokerUnavailable`` (a compose stack starting, a broker
restarting: ``aio_pika.connect_robust`` alone would fail at once).

Once connected, the connection is robust (aio-pika restores its channels, queues and consumers)
and fails over: each reconnection attempt goes to the next node in the list, every
``RECONNECT_INTERVAL`` seconds (aio-pika waits 5 s by default, so a broker back after a restart
went unused for up to 5 s). aio-pika and aiormq log every attempt (a warning, an error and a
traceback each); those lines are dropped, and ``connect_amqp`` logs one warning when the broker
is lost and one when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError
from yarl import URL

from conveyor.amqp_writes import CoalescingFactory
from conveyor.errors import BrokerUnavailable

__all__ = ["RECONNECT_INTERVAL", "FailoverConnection", "connect_amqp", "redact", "split_urls"]

logger = logging.getLogger(__name__)

_FIRST_DELAY = 0.5
_MAX_DELAY = 5.0


def split_urls(value: str) -> list[str]:
    """The node URLs of an ``AMQP_URL`` value (comma-separated, blanks ignored)."""
    return [part.strip() for part in value.split(",") if part.strip()]


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
        # A deliberate close (a clean shutdown) reaches here too, with a CancelledError: it
        # is no outage, and no reconnection follows.
        if getattr(connection, "close_called", False):
            return
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
    """Return ``url`` (or a comma-separated list of URLs) without passwords, for log lines."""
    if "," in url:
        return ",".join(redact(part) for part in split_urls(url))
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


class FailoverConnection(RobustConnection):
    """A robust connection over several nodes: every reconnection attempt tries the next one.

    aio-pika reconnects to ``self.url`` and clears ``transport`` before each attempt; this class
    moves ``url`` to the next node at that moment (from the second attempt on), so a dead node
    is left for a live one and the list is cycled while all are down.
    """

    def __init__(self, urls: list[str], first: int = 0, **kwargs: Any) -> None:
        self._urls = [URL(url) for url in urls]
        self._index = first % len(self._urls)
        self._attempts = 0
        self._transport: Any = None
        self._counting = False  # aio-pika's __init__ clears transport too: not an attempt
        super().__init__(self._urls[self._index], **kwargs)
        self._counting = True
        # aio-pika passes its kwargs on to aiormq; it drops unknown ones given to __init__.
        self.kwargs["transport_factory"] = CoalescingFactory()

    @property
    def url(self) -> URL:
        """The node in use (or being tried)."""
        return self._urls[self._index]

    @url.setter
    def url(self, value: URL) -> None:  # aio-pika sets it at start and on update_secret
        self._urls[self._index] = URL(value)

    @property
    def transport(self) -> Any:
        """aio-pika's transport; set to None right before each connection attempt."""
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        if value is None and self._counting and not self._close_called:
            if self._attempts > 0 and len(self._urls) > 1:
                self._index = (self._index + 1) % len(self._urls)
                logger.warning("RabbitMQ: trying node %s", redact(str(self.url)))
            self._attempts += 1
        self._transport = value


async def connect_amqp(url: str, wait_seconds: float) -> AbstractRobustConnection:
    """Connect to the first node of ``url`` that answers, retrying for up to ``wait_seconds``.

    ``url`` is one AMQP URL or several, comma-separated (see the module docstring).
    """
    urls = split_urls(url)
    if not urls:
        raise BrokerUnavailable("AMQP_URL names no RabbitMQ node")
    deadline = time.monotonic() + wait_seconds
    delay = _FIRST_DELAY
    _quiet_reconnects()
    while True:
        errors: list[str] = []
        for index, node in enumerate(urls):
            connection = FailoverConnection(
                urls, first=index, reconnect_interval=RECONNECT_INTERVAL
            )
            try:
                await connection.connect()
            except (AMQPError, OSError) as e:
                errors.append(f"{redact(node)}: {e}")
                await _discard(connection)
                continue
            if index:
                logger.warning(
                    "RabbitMQ: connected to %s (earlier nodes unreachable)", redact(node)
                )
            outage = _OutageLog(url)
            connection.close_callbacks.add(outage.closed)
            connection.reconnect_callbacks.add(outage.reconnected)
            return connection
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerUnavailable(
                f"RabbitMQ at {redact(url)} did not answer within {wait_seconds:g} s: "
                + "; ".join(errors)
            )
        logger.warning("RabbitMQ not reachable (%s); retrying", "; ".join(errors))
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_DELAY)


async def _discard(connection: FailoverConnection) -> None:
    try:
        await connection.close()
    except Exception as e:  # a connection that never opened may fail to close; nothing to keep
        logger.debug("closing a failed connection: %s", e)
