"""Find RabbitMQ and Redis at the configured URLs, or start private ones on free ports."""

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tools.up.containers import BROKER_IMAGES, BrokerContainer, find_engine_with, run_broker

BROKER_START_TIMEOUT = 90.0

RABBITMQ_CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")
REDIS_CANDIDATES = ("redis-server",)

HOW_TO_GET = {
    "rabbitmq": "install Debian's rabbitmq-server (apt-get install rabbitmq-server), "
    f"load the broker image {BROKER_IMAGES['rabbitmq']} (bazel run //:images), "
    "or point AMQP_URL at a running broker",
    "redis": "install Debian's redis-server (apt-get install redis-server), "
    f"load the broker image {BROKER_IMAGES['redis']} (bazel run //:images), "
    "or point REDIS_URL at a running server",
}


class BrokerError(Exception):
    """A broker is not reachable and cannot be started here."""


@dataclass
class Broker:
    """A broker in use: its URL and, when we started it, its process or container."""

    kind: str
    url: str
    process: subprocess.Popen[bytes] | None = None
    container: BrokerContainer | None = None


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str, default_port: int, timeout: float = 1.0) -> bool:
    """Return True when something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=timeout
        ):
            return True
    except OSError:
        return False


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = f"{parts.username}:{parts.password}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{port}"))


def _find(candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    return None


def _wait(url: str, default_port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + BROKER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(f"{url} exited with {process.returncode}; see {log}")
        if answers(url, default_port):
            return
        time.sleep(0.5)
    process.terminate()
    raise BrokerError(f"{url} did not answer within {BROKER_START_TIMEOUT:g} s; see {log}")


def _start_from_image(kind: str, url: str, default_port: int) -> Broker:
    """Run the broker image of ``kind`` on a free port, or say what is missing."""
    engine = find_engine_with(kind)
    if engine is None:
        binary = "rabbitmq-server" if kind == "rabbitmq" else "redis-server"
        raise BrokerError(
            f"no {kind} answers at {url}, {binary} is not installed and no container engine "
            f"holds {BROKER_IMAGES[kind]}: {HOW_TO_GET[kind]}"
        )
    port = free_port()
    try:
        container = run_broker(engine, kind, port)
    except RuntimeError as e:
        raise BrokerError(str(e)) from e
    private_url = _with_port(url, port)
    deadline = time.monotonic() + BROKER_START_TIMEOUT
    while not _accepts(kind, private_url, default_port):
        if time.monotonic() > deadline:
            container.stop()
            raise BrokerError(f"{BROKER_IMAGES[kind]} did not answer at {private_url}")
        time.sleep(1.0)
    return Broker(kind, private_url, container=container)


def _accepts(kind: str, url: str, default_port: int) -> bool:
    """The port answers and, for RabbitMQ, the AMQP handshake starts (not just the proxy)."""
    if not answers(url, default_port):
        return False
    if kind != "rabbitmq":
        return True
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), 2) as conn:
            conn.sendall(b"AMQP\x00\x00\x09\x01")
            return conn.recv(8).startswith(b"\x01")  # a Connection.Start method frame
    except OSError:
        return False


def start_redis(url: str, workdir: Path) -> Broker:
    """Start a private redis-server on a free port (no persistence)."""
    binary = _find(REDIS_CANDIDATES)
    if binary is None:
        return _start_from_image("redis", url, 6379)
    port = free_port()
    log = workdir / "redis.log"
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    private_url = _with_port(url, port)
    _wait(private_url, 6379, process, log)
    return Broker("redis", private_url, process)


def start_rabbitmq(url: str, workdir: Path) -> Broker:
    """Start a private RabbitMQ node on free ports, with its own name, data and logs."""
    binary = _find(RABBITMQ_CANDIDATES)
    if binary is None:
        return _start_from_image("rabbitmq", url, 5672)
    port, dist_port = free_port(), free_port()
    base = workdir / "rabbitmq"
    base.mkdir(parents=True, exist_ok=True)
    plugins = base / "enabled_plugins"
    plugins.write_text("[].\n")
    env = {
        **os.environ,
        "HOME": str(base),
        "RABBITMQ_NODENAME": f"conveyor-{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
    }
    log = workdir / "rabbitmq.log"
    process = subprocess.Popen(
        [binary], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    private_url = _with_port(url, port)
    _wait(private_url, 5672, process, log)
    return Broker("rabbitmq", private_url, process)


def ensure(amqp_url: str, redis_url: str, workdir: Path) -> list[Broker]:
    """Return the brokers to use: the configured ones if they answer, else private ones."""
    brokers = []
    if answers(amqp_url, 5672):
        brokers.append(Broker("rabbitmq", amqp_url))
    else:
        brokers.append(start_rabbitmq(amqp_url, workdir))
    try:
        if answers(redis_url, 6379):
            brokers.append(Broker("redis", redis_url))
        else:
            brokers.append(start_redis(redis_url, workdir))
    except BrokerError:
        stop(brokers)
        raise
    return brokers


def stop(brokers: list[Broker]) -> None:
    """Stop the brokers this launcher started."""
    for broker in reversed(brokers):
        if broker.container is not None:
            broker.container.stop()
        if broker.process is not None and broker.process.poll() is None:
            broker.process.terminate()
            try:
                broker.process.wait(30)
            except subprocess.TimeoutExpired:
                broker.process.kill()
                broker.process.wait()
