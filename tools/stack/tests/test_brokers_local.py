"""Forced ``local`` mode: private rabbitmq-server / redis-server processes, not the host's."""

import subprocess

from tools.stack.tests.broker_checks import (
    session_port,
    test_redis_answers_ping,
    test_session_brokers_are_private_and_answer,
)

__all__ = ["test_redis_answers_ping", "test_session_brokers_are_private_and_answer"]


def test_they_are_processes_of_the_local_binaries() -> None:
    port = session_port("REDIS_URL")
    found = subprocess.run(["pgrep", "-af", "redis-server"], capture_output=True, text=True)
    assert f"127.0.0.1:{port}" in found.stdout, found.stdout  # redis-server's process title
