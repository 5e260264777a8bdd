"""Start Conveyor's services as real processes on free ports, for integration tests.

Each ``Stack`` has its own registry key prefix and its own model names, so test files can run
in parallel against the same RabbitMQ and Redis; ``close()`` stops every process it started and
deletes the queues and keys it created.
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import redis

from conveyor.protocol import model_queues

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

START_TIMEOUT = 60.0
# The test-only model whose tasks take a while (tests/integration/slow_model.py).
SLOW_MODEL = "tests.integration.slow_model"
"""Generous: a loaded 2-core machine may take long to import scikit-learn."""


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns a truthy value; return it or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (httpx.HTTPError, OSError) as e:
            last_error = e
        else:
            if value:
                return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout:g} s (last error: {last_error})")


class Service:
    """One child process (``python -m module``) with its output in a log file."""

    def __init__(self, module: str, env: dict[str, str], log_dir: Path, label: str) -> None:
        self.module = module
        self.label = label
        self.log_path = log_dir / f"{label}.log"
        full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(sys.path)}
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (SIGCONT first, in case it is stopped), then SIGKILL; return the exit code."""
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        """The process's output so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")


class Stack:
    """A registry and a gateway on free ports, plus any workers a test starts."""

    def __init__(self, liveness_window: float = 5.0, **gateway_env: str) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"conveyor-{self.id}-"))
        self.key_prefix = f"test:{self.id}:registry:"
        self.registry_port = free_port()
        self.api_port = free_port()
        self.registry_url = f"http://127.0.0.1:{self.registry_port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.models: set[str] = set()
        self.workers: list[Service] = []
        common = {"AMQP_URL": AMQP_URL, "REDIS_URL": REDIS_URL}
        self.registry = Service(
            "registry",
            {
                **common,
                "REGISTRY_PORT": str(self.registry_port),
                "REGISTRY_KEY_PREFIX": self.key_prefix,
                "LIVENESS_WINDOW": str(liveness_window),
            },
            self.log_dir,
            "registry",
        )
        self.gateway = Service(
            "api",
            {
                **common,
                "API_PORT": str(self.api_port),
                "REGISTRY_URL": self.registry_url,
                **gateway_env,
            },
            self.log_dir,
            "api",
        )
        self.http = httpx.Client(base_url=self.api_url, timeout=60.0)
        try:
            self._wait_http(self.registry, f"{self.registry_url}/healthz")
            self._wait_http(self.gateway, f"{self.api_url}/readyz")
        except BaseException:
            self.close()
            raise

    def model_name(self, base: str) -> str:
        """A model name unique to this stack (so queues do not collide across tests)."""
        name = f"{base}_{self.id}_{len(self.models)}"
        self.models.add(name)
        return name

    def start_worker(self, module: str, model: str, **env: str) -> Service:
        """Start a worker of ``module`` serving ``model``; wait until the registry sees it."""
        before = self.instances(model)
        worker = Service(
            module,
            {
                "AMQP_URL": AMQP_URL,
                "REDIS_URL": REDIS_URL,
                "REGISTRY_URL": self.registry_url,
                "MODEL_NAME": model,
                **env,
            },
            self.log_dir,
            f"{model}-{len(self.workers)}",
        )
        self.workers.append(worker)
        self.models.add(model)

        def registered() -> bool:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{worker.log()}")
            return self.instances(model) > before

        wait_until(registered, START_TIMEOUT, what=f"{model} registered")
        return worker

    def instances(self, model: str) -> int:
        """Live instances of ``model`` according to the registry (0 if unknown)."""
        response = httpx.get(f"{self.registry_url}/models/{model}", timeout=10.0)
        if response.status_code == 404:
            return 0
        response.raise_for_status()
        return int(response.json()["instances"])

    def _wait_http(self, service: Service, url: str) -> None:
        def up() -> bool:
            if service.process.poll() is not None:
                raise AssertionError(f"{service.label} exited early:\n{service.log()}")
            return httpx.get(url, timeout=5.0).status_code == 200

        wait_until(up, START_TIMEOUT, what=f"{service.label} ready")

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process, delete this stack's queues and Redis keys."""
        self.http.close()
        for service in [*self.workers, self.gateway, self.registry]:
            service.stop()
        asyncio.run(_delete_queues([q for model in self.models for q in model_queues(model, "1")]))
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"test:{self.id}:*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


async def _delete_queues(names: list[str]) -> None:
    if not names:
        return
    connection = await aio_pika.connect(AMQP_URL)
    try:
        for name in names:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
    finally:
        await connection.close()
