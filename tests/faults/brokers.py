"""Private RabbitMQ and Redis processes that a fault test may kill and start again.

Each broker keeps its port, node name and data directory across restarts, as a restarted
production broker would: RabbitMQ's quorum queues and Redis's append-only file (fsync on every
write) come back with what they held. They never touch the host's brokers.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.stack import free_port
from tools.stack.brokers import accepts, find_binary, local_command
from tools.stack.process import Service

START_TIMEOUT = 120.0


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PrivateBroker:
    """One broker process on a fixed free port; ``kill`` is SIGKILL of its process group."""

    kind = ""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir / f"{self.kind}-{self.port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "out.log"
        self.process: Service | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> float:
        """Start the broker; return when it answers (``time.monotonic()`` at that moment)."""
        command, env = self._command()
        self.process = Service(self.kind, env, self.workdir, "out", argv=command)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready():
            if not self.process.alive():
                raise RuntimeError(f"{self.kind} exited; see {self.log_path}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.kind} did not answer in {START_TIMEOUT:g} s")
            time.sleep(0.05)
        return time.monotonic()

    def kill(self) -> None:
        """SIGKILL the broker and every process of its session (no clean shutdown)."""
        if self.process is None:
            return
        self.process.kill()
        self.process = None
        deadline = time.monotonic() + 30
        while self._ready() and time.monotonic() < deadline:
            time.sleep(0.05)


class PrivateRedis(PrivateBroker):
    """redis-server with its append-only file fsynced on every write."""

    kind = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        return local_command("redis", find_binary("redis"), self.port, self.workdir, durable=True)

    def _ready(self) -> bool:
        return _redis_ping(self.port)


class PrivateRabbitMQ(PrivateBroker):
    """A RabbitMQ node of its own name, ports and data directory."""

    kind = "rabbitmq"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.dist_port = free_port()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        return local_command(
            "rabbitmq",
            find_binary("rabbitmq"),
            self.port,
            self.workdir,
            node_name=f"conveyor-faults-{self.port}@localhost",
            dist_port=self.dist_port,  # the same across restarts, as the node name
        )

    def _ready(self) -> bool:
        return accepts("rabbitmq", self.url)


@dataclass
class Brokers:
    """The private RabbitMQ and Redis of a test module."""

    rabbitmq: PrivateRabbitMQ
    redis: PrivateRedis
