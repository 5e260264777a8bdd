"""Connecting to RabbitMQ, for the gateway and the workers.

``AMQP_URL`` names one node or several, comma-separated (the nodes of one cluster):
``amqp://u:p@node1:5672/,amqp://u:p@node2:5672/``. The credentials, virtual host and query
parameters are the cluster's, taken from the first URL; the others give only a host and port.

``connect_amqp`` returns an aio-pika robust connection (it restores its channels, queues and
consumers after a loss) whose sockets are opened by :class:`ClusterTransportFactory`, aiormq's
public transport hook:

- every opening tries the node in use first, then the next ones in list order, and goes round
  the list every ``RECONNECT_INTERVAL`` seconds until a node answers: a dead node is left for a
  live one, and a broker back after a restart is used within ``RECONNECT_INTERVAL``;
- each connection's writes made in one turn of the event loop leave in one socket write
  (:class:`LoopWriteBuffer`), in order.

Until the first connection is made ``connect_amqp`` gives up after ``wait_seconds`` with
``BrokerUnavailable``. Afterwards a lost broker is logged once, and its return once; aio-pika's
and aiormq's own lines about each reconnection attempt are below the levels set here for their
connection loggers (``aio_pika.robust_connection`` and ``aiormq.connection`` at ERROR,
``aio_pika.tools`` at CRITICAL; a level configured already is kept).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

from aio_pika import RobustConnection
from aio_pika.abc import AbstractConnection, AbstractRobustConnection, ConnectionParameter
from aiormq import AMQPConnectionError, AMQPError, SSLContextProvider, TransportFactory
from yarl import URL

from conveyor.errors import BrokerUnavailable

__all__ = [
    "RECONNECT_INTERVAL",
    "ClusterConnection",
    "ClusterTransportFactory",
    "LoopWriteBuffer",
    "connect_amqp",
    "redact",
    "split_urls",
]

logger = logging.getLogger(__name__)

RECONNECT_INTERVAL = 0.5
"""Seconds between two rounds of the node list while no node answers."""

NODE_CONNECT_TIMEOUT = 5.0
"""Seconds one node may take to accept a connection (TLS included) before the next is tried."""

STILL_DOWN_LOG_INTERVAL = 30.0
"""While no node answers, a warning says so this often."""

_FIRST_DELAY = 0.5
_MAX_DELAY = 5.0
_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
_QUIETED_LOGGERS = {
    # each failed reconnection attempt: a warning, an error, a traceback
    "aio_pika.robust_connection": logging.ERROR,
    "aiormq.connection": logging.ERROR,
    # its only lines are errors of callbacks: each robust channel's, at every lost connection
    "aio_pika.tools": logging.CRITICAL,
}


def split_urls(value: str) -> list[str]:
    """The node URLs of an ``AMQP_URL`` value (comma-separated, blanks ignored)."""
    return [part.strip() for part in value.split(",") if part.strip()]


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


class LoopWriteBuffer(asyncio.Transport):
    """A transport that holds writes and sends them joined, in order, on the event loop's next
    turn: one ``send`` for all the frames a connection writes in one turn.

    ``close`` and ``write_eof`` send what is held first; ``abort`` drops it. Reading, flow
    control and ``get_extra_info`` are the wrapped transport's."""

    __slots__ = ("held", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.transport = transport
        self.loop = loop
        self.held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data``: it leaves with the others held, on the next turn."""
        if not self.held:
            self.loop.call_soon(self.flush)
        self.held.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        """Hold each of ``list_of_data``."""
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is held now, as one write (nothing once the connection is closing)."""
        held = self.held
        if not held:
            return
        self.held = []
        if not self.transport.is_closing():
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        """Send what is held, then close."""
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        """Send what is held, then end the stream."""
        self.flush()
        self.transport.write_eof()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def abort(self) -> None:
        """Drop what is held and the connection."""
        self.held = []
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        """Bytes held here and in the wrapped transport's buffer."""
        return sum(map(len, self.held)) + self.transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.transport.get_protocol()


class ClusterTransportFactory(TransportFactory):
    """Opens an AMQP connection's socket on the first node of ``urls`` that answers, starting
    with the node in use, with writes through a :class:`LoopWriteBuffer`.

    ``create`` goes round the list every ``retry_interval`` seconds until a node answers; while
    ``give_up_at`` (a ``time.monotonic()`` value) is set it raises ``AMQPConnectionError``, naming
    each node's error, once that time has passed. ``amqps`` nodes are opened with TLS, with the
    context aiormq provides from the connection URL (as aiormq's own factories do)."""

    def __init__(self, urls: list[str], retry_interval: float = RECONNECT_INTERVAL) -> None:
        self.nodes = [URL(url) for url in urls]
        if not self.nodes or not all(node.host for node in self.nodes):
            raise ValueError(f"AMQP node URLs without a host: {redact(','.join(urls))}")
        self.retry_interval = retry_interval
        self.give_up_at: float | None = None
        self.index = 0
        """The node in use (or last used)."""
        self.opened = 0
        """Sockets opened (reconnections included)."""

    @property
    def node(self) -> str:
        """The node in use (or last used), without its password."""
        return redact(str(self.nodes[self.index]))

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a socket on the node in use or, failing that, the next one that answers.

        ``url`` is the connection's (the first node's); ``kwargs`` are aiormq's: its
        ``ssl_context_provider`` and the rest for ``loop.create_connection``."""
        provider: SSLContextProvider | None = kwargs.pop("ssl_context_provider", None)
        started = last_log = time.monotonic()
        if not self.opened:
            last_log -= STILL_DOWN_LOG_INTERVAL  # the first failure before any connection is news
        while True:
            errors: list[str] = []
            for offset in range(len(self.nodes)):
                index = (self.index + offset) % len(self.nodes)
                node = self.nodes[index]
                try:
                    async with asyncio.timeout(NODE_CONNECT_TIMEOUT):
                        opened = await _open(node, provider, kwargs)
                except OSError as e:  # refused, unreachable, timed out, TLS refused
                    errors.append(f"{redact(str(node))}: {str(e) or repr(e)}")
                    continue
                if index != self.index and not self.opened:
                    logger.warning("RabbitMQ: connected to %s", redact(str(node)))
                self.index = index
                self.opened += 1
                return opened
            now = time.monotonic()
            pause = self.retry_interval
            if self.give_up_at is not None:
                if now >= self.give_up_at:
                    raise AMQPConnectionError("; ".join(errors))
                pause = min(pause, self.give_up_at - now)
            if now - last_log >= STILL_DOWN_LOG_INTERVAL:
                last_log = now
                logger.warning(
                    "RabbitMQ not reachable (%s); retrying every %g s%s",
                    "; ".join(errors),
                    self.retry_interval,
                    f", down {now - started:.0f} s" if now - started >= 1 else "",
                )
            await asyncio.sleep(pause)


async def _open(
    node: URL, provider: SSLContextProvider | None, kwargs: dict[str, Any]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A socket to ``node`` as ``asyncio.open_connection`` opens one, its writes buffered."""
    loop = asyncio.get_running_loop()
    context: ssl.SSLContext | None = None
    if node.scheme == "amqps":
        context = await provider.get_context() if provider else ssl.create_default_context()
    reader = asyncio.StreamReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    port = node.explicit_port or _DEFAULT_PORTS.get(node.scheme, 5672)
    transport, _ = await loop.create_connection(
        lambda: protocol, node.host or "", port, ssl=context, **kwargs
    )
    writer = asyncio.StreamWriter(LoopWriteBuffer(transport, loop), protocol, reader, loop)
    return reader, writer


def _transport_factory(value: object) -> TransportFactory:
    if not isinstance(value, TransportFactory):
        raise ValueError("not a transport factory")  # (a URL query value): aiormq's default
    return value


class ClusterConnection(RobustConnection):
    """aio-pika's robust connection, with aiormq's ``transport_factory`` among its parameters:
    aio-pika hands on to aiormq only the parameters its connection class lists, as
    ``RobustConnection`` itself lists ``reconnect_interval``."""

    PARAMETERS = (
        *RobustConnection.PARAMETERS,
        ConnectionParameter(name="transport_factory", parser=_transport_factory, is_kwarg=True),
    )


class _OutageLog:
    """One warning when the connection is lost, one when it is back."""

    def __init__(self, factory: ClusterTransportFactory) -> None:
        self.factory = factory
        self.lost_at: float | None = None

    def closed(
        self, connection: AbstractConnection | None, error: BaseException | None = None
    ) -> None:
        # A deliberate close reaches here too: it is no outage, and no reconnection follows.
        if connection is None or connection.close_called or connection.is_closed:
            return
        if self.lost_at is None and error is not None:
            self.lost_at = time.monotonic()
            logger.warning(
                "RabbitMQ at %s lost (%s); reconnecting",
                self.factory.node,
                str(error) or repr(error),
            )

    def reconnected(self, connection: AbstractRobustConnection | None) -> None:
        lost = "" if self.lost_at is None else f" after {time.monotonic() - self.lost_at:.1f} s"
        self.lost_at = None
        logger.warning("RabbitMQ at %s back%s", self.factory.node, lost)


def _quiet_library_reconnect_logs() -> None:
    """Levels for the loggers of aio-pika and aiormq that report each reconnection attempt,
    unless configured otherwise (a level already set is kept)."""
    for name, level in _QUIETED_LOGGERS.items():
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(level)


async def connect_amqp(url: str, wait_seconds: float) -> AbstractRobustConnection:
    """Connect to the first node of ``url`` that answers, retrying for up to ``wait_seconds``.

    ``url`` is one AMQP URL or several, comma-separated (see the module docstring). Raises
    ``BrokerUnavailable`` when no node has answered in time.
    """
    urls = split_urls(url)
    if not urls:
        raise BrokerUnavailable("AMQP_URL names no RabbitMQ node")
    _quiet_library_reconnect_logs()
    factory = ClusterTransportFactory(urls)
    deadline = time.monotonic() + wait_seconds
    delay = _FIRST_DELAY
    while True:
        factory.give_up_at = deadline
        connection = ClusterConnection(
            URL(urls[0]), reconnect_interval=RECONNECT_INTERVAL, transport_factory=factory
        )
        try:
            await connection.connect()
        except (AMQPError, OSError) as e:  # no node answered, or one refused the handshake
            await _discard(connection)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"RabbitMQ at {redact(url)} did not answer within {wait_seconds:g} s: {e}"
                ) from e
            logger.warning("RabbitMQ at %s refused the connection (%s); retrying", factory.node, e)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_DELAY)
            continue
        factory.give_up_at = None  # from now on the connection reconnects for as long as it takes
        outage = _OutageLog(factory)
        connection.close_callbacks.add(outage.closed)
        connection.reconnect_callbacks.add(outage.reconnected)
        return connection


async def _discard(connection: ClusterConnection) -> None:
    try:
        await connection.close()
    except Exception as e:  # a connection that never opened may fail to close; nothing to keep
        logger.debug("closing a failed connection: %s", e)
