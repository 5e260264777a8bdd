"""The launcher reuses answering brokers and rewrites URLs for private ones."""

import socket
from pathlib import Path

import pytest

from tools.up import brokers


def test_answers_sees_a_listening_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert brokers.answers(f"redis://127.0.0.1:{port}/0", 6379)
    assert not brokers.answers(f"redis://127.0.0.1:{port}/0", 6379)


def test_private_url_keeps_credentials_and_path() -> None:
    url = brokers._with_port("amqp://guest:secret@example.invalid:5672/vhost", 40000)
    assert url == "amqp://guest:secret@127.0.0.1:40000/vhost"


def test_missing_binary_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(brokers, "REDIS_CANDIDATES", ("no-such-redis-server-binary",))
    monkeypatch.setattr(brokers, "find_engine_with", lambda kind: None)
    with pytest.raises(
        brokers.BrokerError,
        match=r"redis-server is not installed and no container engine holds conveyor/redis:dev",
    ):
        brokers.start_redis("redis://127.0.0.1:1/0", tmp_path)
