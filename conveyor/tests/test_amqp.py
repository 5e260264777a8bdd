"""connect_amqp waits for a RabbitMQ that is not up yet, gives up with a clear error, and fails
over between the nodes of a list."""

import asyncio
import logging
import os
import uuid
from urllib.parse import urlsplit

import aio_pika
import pytest

from conveyor.amqp import connect_amqp, redact
from conveyor.errors import BrokerUnavailable
from tools.stack.ports import free_port

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _forward_later(port: int, delay: float) -> asyncio.Server:
    """After ``delay`` s, listen on ``port`` and forward every connection to the real broker."""
    broker = urlsplit(AMQP_URL)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(broker.hostname, broker.port or 5672)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    await asyncio.sleep(delay)
    return await asyncio.start_server(handle, "127.0.0.1", port)


def _url_on(port: int) -> str:
    parts = urlsplit(AMQP_URL)
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}").geturl()


def test_redact_hides_the_password() -> None:
    assert redact("amqp://guest:secret@host:5672/") == "amqp://guest:***@host:5672/"
    assert redact("amqp://host:5672/") == "amqp://host:5672/"


@pytest.mark.asyncio
async def test_gives_up_after_the_timeout_naming_the_broker() -> None:
    port = free_port()
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}.*within 1 s"):
        await connect_amqp(f"amqp://guest:secret@127.0.0.1:{port}/", wait_seconds=1.0)


@pytest.mark.asyncio
async def test_waits_for_a_broker_that_comes_up_later() -> None:
    port = free_port()
    forwarder = asyncio.create_task(_forward_later(port, delay=1.5))
    connection = await connect_amqp(_url_on(port), wait_seconds=30.0)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        assert queue.name
    finally:
        await connection.close()
        server = await forwarder
        server.close()


def test_redact_hides_every_password_of_a_node_list() -> None:
    assert redact("amqp://u:a@h1/,amqp://u:b@h2/") == "amqp://u:***@h1/,amqp://u:***@h2/"


class _Node:
    """A TCP forwarder to the real broker standing in for one cluster node; ``kill`` drops it
    and every connection through it, as a node that dies does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = _url_on(self.port)
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        broker = urlsplit(AMQP_URL)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            up_reader, up_writer = await asyncio.open_connection(
                broker.hostname, broker.port or 5672
            )
            self._writers += [writer, up_writer]
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)

    async def kill(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()


async def _round_trip(connection: aio_pika.abc.AbstractConnection) -> None:
    """Declare a private queue, publish to it and get the message back."""
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await channel.default_exchange.publish(aio_pika.Message(b"ping"), routing_key=queue.name)
    for _ in range(50):
        message = await queue.get(fail=False)
        if message is not None:
            assert message.body == b"ping"
            await message.ack()
            await channel.close()
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the message did not come back")


@pytest.mark.asyncio
async def test_connects_to_the_first_node_that_answers() -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    live = _Node()
    await live.start()
    connection = await connect_amqp(f"{dead},{live.url}", wait_seconds=5.0)
    try:
        assert live.connections == 1
        await _round_trip(connection)
    finally:
        await connection.close()
        await live.kill()


@pytest.mark.asyncio
async def test_fails_over_to_the_next_node_when_its_node_dies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor.amqp")
    first, second = _Node(), _Node()
    await first.start()
    await second.start()
    connection = await connect_amqp(f"{first.url},{second.url}", wait_seconds=5.0)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"test-failover-{uuid.uuid4().hex}", auto_delete=True)
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            await received.put(message.body)

        await queue.consume(on_message)
        assert (first.connections, second.connections) == (1, 0)
        await first.kill()
        # The robust connection reconnects to the second node and restores its consumer.
        for _ in range(100):
            if second.connections and connection.connected.is_set():
                break
            await asyncio.sleep(0.1)
        assert second.connections >= 1
        assert f":{second.port}/" in connection.kwargs["transport_factory"].node
        await _round_trip(connection)
        publisher = await connection.channel()
        await publisher.default_exchange.publish(aio_pika.Message(b"after"), routing_key=queue.name)
        assert await asyncio.wait_for(received.get(), 10) == b"after"
        ours = [r.getMessage() for r in caplog.records if r.name == "conveyor.amqp"]
        lost = [message for message in ours if " lost (" in message]
        assert len(lost) == 1, lost  # the node's death is an outage, logged once
        libraries = [r.getMessage() for r in caplog.records if r.name.startswith("aio")]
        assert libraries == []  # aio-pika's and aiormq's lines about each attempt stay quiet
    finally:
        await connection.close()
        await second.kill()


@pytest.mark.asyncio
async def test_a_deliberate_close_is_not_logged_as_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="conveyor.amqp")
    connection = await connect_amqp(AMQP_URL, wait_seconds=10.0)
    await _round_trip(connection)
    await connection.close()
    assert connection.is_closed
    assert [r.getMessage() for r in caplog.records if r.name == "conveyor.amqp"] == []


@pytest.mark.asyncio
async def test_cycles_through_the_nodes_while_all_are_down() -> None:
    first, second = _Node(), _Node()
    await first.start()
    connection = await connect_amqp(f"{first.url},{second.url}", wait_seconds=5.0)
    try:
        await first.kill()
        await asyncio.sleep(2.5)  # attempts on the second node (down) and the first (down)
        await first.start()
        await second.start()
        for _ in range(100):
            if connection.connected.is_set() and (first.connections + second.connections) > 1:
                break
            await asyncio.sleep(0.1)
        await _round_trip(connection)
    finally:
        await connection.close()
        await first.kill()
        await second.kill()
