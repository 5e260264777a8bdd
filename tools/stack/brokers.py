"""A RabbitMQ + Redis pair in one of three modes, or the brokers already at given URLs.

- ``container``: Conveyor's broker images in podman or Docker, on free loopback ports;
- ``local``: private ``rabbitmq-server`` / ``redis-server`` processes, each with its own data
  directory and free ports;
- ``external``: the brokers at ``AMQP_URL`` / ``REDIS_URL``, used as they are.

What we start, :meth:`Brokers.stop` removes; a broker we did not start is never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tools.oci.engine import Engine
from tools.stack.containers import BROKER_IMAGES, BrokerContainer, find_engine_with, run_broker
from tools.stack.ports import answers, free_port
from tools.stack.process import Service
from tools.stack.waiting import wait_until

__all__ = [
    "DEFAULT_URLS",
    "MODES",
    "Broker",
    "BrokerError",
    "Brokers",
    "accepts",
    "ensure",
    "find_binary",
    "local_binaries",
    "local_command",
    "start_container",
    "start_local",
]

MODES = ("container", "local", "external")
BROKER_START_TIMEOUT = 120.0
DEFAULT_URLS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "redis": "redis://127.0.0.1:6379/0",
}
DEFAULT_PORTS = {"rabbitmq": 5672, "redis": 6379}
BINARIES = {
    "rabbitmq": ("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server"),
    "redis": ("redis-server",),
}
HOW_TO_GET = {
    "rabbitmq": "install Debian's rabbitmq-server (apt-get install rabbitmq-server), "
    f"load the broker image {BROKER_IMAGES['rabbitmq']} (bazel run //:images), "
    "or point AMQP_URL at a running broker",
    "redis": "install Debian's redis-server (apt-get install redis-server), "
    f"load the broker image {BROKER_IMAGES['redis']} (bazel run //:images), "
    "or point REDIS_URL at a running server",
}


class BrokerError(Exception):
    """A broker is not reachable and cannot be started here; the message says what to do."""


@dataclass
class Broker:
    """A broker in use: its URL and, when we started it, its process or container."""

    kind: str
    url: str
    process: Service | None = None
    container: BrokerContainer | None = None

    @property
    def started(self) -> bool:
        """True when we started it (and :meth:`stop` removes it)."""
        return self.process is not None or self.container is not None

    def stop(self) -> None:
        """Remove what we started; leave a broker we found alone."""
        if self.container is not None:
            self.container.stop()
        if self.process is not None:
            self.process.stop()


@dataclass
class Brokers:
    """The pair in use and the mode it came from."""

    mode: str
    rabbitmq: Broker
    redis: Broker

    @property
    def amqp_url(self) -> str:
        """RabbitMQ's URL."""
        return self.rabbitmq.url

    @property
    def redis_url(self) -> str:
        """Redis's URL."""
        return self.redis.url

    def stop(self) -> None:
        """Remove the brokers we started."""
        self.redis.stop()
        self.rabbitmq.stop()


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = f"{parts.username}:{parts.password}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{port}"))


def _endpoint(kind: str, url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[kind]


def accepts(kind: str, url: str) -> bool:
    """The broker at ``url`` takes connections; for RabbitMQ, the AMQP handshake starts (a
    published container port answers before the broker inside does)."""
    host, port = _endpoint(kind, url)
    if not answers(host, port):
        return False
    if kind != "rabbitmq":
        return True
    try:
        with socket.create_connection((host, port), 2) as conn:
            conn.sendall(b"AMQP\x00\x00\x09\x01")
            return conn.recv(8).startswith(b"\x01")  # a Connection.Start method frame
    except OSError:
        return False


def _find(kind: str) -> str | None:
    for candidate in BINARIES[kind]:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    return None


def find_binary(kind: str) -> str:
    """The installed ``rabbitmq-server`` or ``redis-server``; ``BrokerError`` saying how to get
    it when it is missing."""
    binary = _find(kind)
    if binary is None:
        raise BrokerError(f"{BINARIES[kind][-1]} is not installed: {HOW_TO_GET[kind]}")
    return binary


def local_binaries() -> bool:
    """True when both broker binaries are installed."""
    return _find("rabbitmq") is not None and _find("redis") is not None


def _wait_started(broker: Broker, what: str) -> Broker:
    def ready() -> bool:
        if broker.process is not None and not broker.process.alive():
            raise BrokerError(
                f"{what} exited with {broker.process.returncode}: {broker.process.log()[-2000:]}"
            )
        return accepts(broker.kind, broker.url)

    try:
        wait_until(ready, BROKER_START_TIMEOUT, interval=0.3, what=f"{what} at {broker.url}")
    except BaseException as e:
        broker.stop()
        if isinstance(e, TimeoutError):
            raise BrokerError(str(e)) from e
        raise
    return broker


def local_command(
    kind: str,
    binary: str,
    port: int,
    data: Path,
    *,
    durable: bool = False,
    node_name: str | None = None,
    dist_port: int | None = None,
    redis_args: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a private broker on ``port`` with its data in
    ``data``, bound to the loopback.

    Redis keeps nothing on disk, or with ``durable`` an append-only file fsynced on every
    write; ``redis_args`` are added (``--replicaof ...``). RabbitMQ runs as ``node_name``
    (default ``conveyor-<port>@localhost``) with its Erlang distribution on ``dist_port``
    (default: a free one) and no plugins.
    """
    if kind == "redis":
        persistence = ["yes", "--appendfsync", "always"] if durable else ["no"]
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", *persistence, "--dir", str(data), *redis_args]  # fmt: skip
        return argv, {}
    plugins = data / "enabled_plugins"
    plugins.write_text("[].\n")
    env = {
        "HOME": str(data),
        "RABBITMQ_NODENAME": node_name or f"conveyor-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port or free_port()),
        "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data / "log"),
        "RABBITMQ_PID_FILE": str(data / "rabbitmq.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_CONFIG_FILE": str(data / "rabbitmq"),
    }
    return [binary], env


def start_local(
    kind: str, workdir: Path, url: str | None = None, redis_args: Sequence[str] = ()
) -> Broker:
    """A private ``rabbitmq-server`` or ``redis-server`` on a free port, data in ``workdir``
    (``redis_args``: see :func:`local_command`)."""
    binary = find_binary(kind)
    port = free_port()
    data = workdir / f"{kind}-{port}"
    data.mkdir(parents=True, exist_ok=True)
    argv, env = local_command(kind, binary, port, data, redis_args=redis_args)
    process = Service(kind, env, workdir, f"{kind}-{port}", argv=argv)
    broker = Broker(kind, _with_port(url or DEFAULT_URLS[kind], port), process=process)
    return _wait_started(broker, f"{kind} ({binary})")


def start_container(kind: str, engine: Engine, url: str | None = None) -> Broker:
    """Conveyor's broker image of ``kind`` (already loaded) on a free loopback port."""
    port = free_port()
    try:
        container = run_broker(engine, kind, port, label="broker")
    except RuntimeError as e:
        raise BrokerError(str(e)) from e
    broker = Broker(kind, _with_port(url or DEFAULT_URLS[kind], port), container=container)
    return _wait_started(broker, BROKER_IMAGES[kind])


def start_pair(mode: str, workdir: Path, engine: Engine | None = None,
               environ: Mapping[str, str] = os.environ) -> Brokers:  # fmt: skip
    """Start (or, for ``external``, find) a broker pair in ``mode``."""
    if mode == "external":
        amqp = environ.get("AMQP_URL") or DEFAULT_URLS["rabbitmq"]
        redis = environ.get("REDIS_URL") or DEFAULT_URLS["redis"]
        return Brokers(mode, Broker("rabbitmq", amqp), Broker("redis", redis))
    if mode not in MODES:
        raise BrokerError(f"unknown broker mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "container" and engine is None:
        raise BrokerError("container mode needs a container engine: run tools/podman/setup")
    started: list[Broker] = []
    try:
        for kind in ("rabbitmq", "redis"):
            if mode == "container" and engine is not None:
                started.append(start_container(kind, engine))
            else:
                started.append(start_local(kind, workdir))
    except BaseException:
        for broker in started:
            broker.stop()
        raise
    return Brokers(mode, started[0], started[1])


def ensure(amqp_url: str, redis_url: str, workdir: Path) -> Brokers:
    """The brokers ``//:up`` uses: those at the URLs when they answer, else private processes
    from local binaries, else containers of the loaded broker images."""
    found: list[Broker] = []
    try:
        for kind, url in (("rabbitmq", amqp_url), ("redis", redis_url)):
            if answers(*_endpoint(kind, url)):
                found.append(Broker(kind, url))
            elif _find(kind) is not None:
                found.append(start_local(kind, workdir, url))
            else:
                engine = find_engine_with(kind)
                if engine is None:
                    raise BrokerError(
                        f"no {kind} answers at {url}, {BINARIES[kind][-1]} is not installed and "
                        f"no container engine holds {BROKER_IMAGES[kind]}: {HOW_TO_GET[kind]}"
                    )
                found.append(start_container(kind, engine, url))
    except BaseException:
        for broker in found:
            broker.stop()
        raise
    return Brokers("found", found[0], found[1])
