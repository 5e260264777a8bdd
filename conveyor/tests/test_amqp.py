"""connect_amqp waits for a RabbitMQ that is not up yet, and gives up with a clear error."""

import asyncio
import os
import socket
from urllib.parse import urlsplit

import pytest

from conveyor.amqp import connect_amqp, redact
from conveyor.errors import BrokerUnavailable

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = _free_port()
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}.*within 1 s"):
        await connect_amqp(f"amqp://guest:secret@127.0.0.1:{port}/", wait_seconds=1.0)


@pytest.mark.asyncio
async def test_waits_for_a_broker_that_comes_up_later() -> None:
    port = _free_port()
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
