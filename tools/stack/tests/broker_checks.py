"""Checks shared by the broker-mode tests: the session's brokers are private and answer.

Imported by ``test_brokers_<mode>.py``, where pytest collects these tests once per mode.
"""

import os
import socket
from urllib.parse import urlsplit

from tools.stack.brokers import accepts


def session_port(variable: str) -> int:
    """The port of the broker URL in ``variable``."""
    port = urlsplit(os.environ[variable]).port
    assert port is not None
    return port


def test_session_brokers_are_private_and_answer() -> None:
    assert session_port("AMQP_URL") != 5672 and session_port("REDIS_URL") != 6379
    assert accepts("rabbitmq", os.environ["AMQP_URL"])
    assert accepts("redis", os.environ["REDIS_URL"])


def test_redis_answers_ping() -> None:
    with socket.create_connection(("127.0.0.1", session_port("REDIS_URL")), timeout=5) as conn:
        conn.sendall(b"PING\r\n")
        assert conn.recv(64).startswith(b"+PONG")
