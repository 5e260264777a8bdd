"""Private RabbitMQ and Redis processes that a fault test may kill and start again.

Each broker keeps its port, node name and data directory across restarts, as a restarted
production broker would: RabbitMQ's quorum queues and Redis's append-only file (fsync on every
write) come back with what they held. They never touch the host's brokers.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.stack import free_port
from tools.stack.process import Service

START_TIMEOUT = 120.0

# Where //:up finds them too (tools/up/brokers.py).
RABBITMQ_CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")
REDIS_CANDIDATES = ("redis-server",)


def _binary(candidates: tuple[str, ...]) -> str:
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    raise RuntimeError(f"none of {candidates} is installed (apt-get install rabbitmq-server redis)")


def _amqp_handshake(port: int) -> bool:
    """True once the node answers the AMQP protocol header with Connection.Start."""
    try:
        with socket.create_connection(("127.0.0.1", port), 1.0) as conn:
            conn.sendall(b"AMQP\x00\x00\x09\x01")
            return conn.recv(8).startswith(b"\x01")
    except OSError:
        return False


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
        command = [
            _binary(REDIS_CANDIDATES),
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir),
        ]  # fmt: skip
        return command, dict(os.environ)

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
        base = self.workdir
        plugins = base / "enabled_plugins"
        plugins.write_text("[].\n")
        env = {
            **os.environ,
            "HOME": str(base),
            "RABBITMQ_NODENAME": f"conveyor-faults-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        }
        return [_binary(RABBITMQ_CANDIDATES)], env

    def _ready(self) -> bool:
        return _amqp_handshake(self.port)


@dataclass
class Brokers:
    """The private RabbitMQ and Redis of a test module."""

    rabbitmq: PrivateRabbitMQ
    redis: PrivateRedis
