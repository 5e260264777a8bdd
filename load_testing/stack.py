"""Start a private Conveyor stack (registry, gateway, model_a, model_b) as real processes.

Every process is ``[sys.executable, "-m", <module>]`` with the importable roots of this process
as ``PYTHONPATH``, so it works from a virtualenv and from Bazel runfiles alike. Ports are free
ones picked at start; model names and the registry's Redis key prefix carry a unique tag, so
the stack shares nothing with another stack on the same brokers. :meth:`Stack.stop` sends
SIGTERM (workers first), then deletes the stack's registry keys and model queues.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

import aio_pika
import redis

from conveyor.protocol import model_queues

__all__ = ["Stack", "StackError", "free_port"]

DEFAULT_AMQP_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
RESULT_TTL_S: Final = 300


class StackError(Exception):
    """The stack did not come up (or a process died); the message names the log to read."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@dataclass
class Stack:
    """A running stack; use as a context manager, or call :meth:`start` and :meth:`stop`."""

    log_dir: Path
    amqp_url: str = field(default_factory=lambda: os.environ.get("AMQP_URL", DEFAULT_AMQP_URL))
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    tag: str = field(default_factory=lambda: f"lt{uuid.uuid4().hex[:8]}")
    start_timeout: float = 120.0
    registry_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def model_a(self) -> str:
        """This stack's name for model_a."""
        return f"{self.tag}_model_a"

    @property
    def model_b(self) -> str:
        """This stack's name for model_b."""
        return f"{self.tag}_model_b"

    @property
    def api_url(self) -> str:
        """Base URL of the gateway."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def registry_url(self) -> str:
        """Base URL of the registry."""
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def key_prefix(self) -> str:
        """The registry's Redis key prefix for this stack."""
        return f"conveyor:registry:{self.tag}:"

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "AMQP_URL": self.amqp_url,
            "REDIS_URL": self.redis_url,
            "REGISTRY_URL": self.registry_url,
            "RESULT_TTL": str(RESULT_TTL_S),
            "DEFAULT_RESULT_TTL": str(RESULT_TTL_S),
            **extra,
        }

    def _spawn(self, name: str, module: str, env: dict[str, str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(
                    f"{name} exited with {process.returncode}; see {self.log_dir / name}.log"
                )

    def _wait(self, what: str, ready: object) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if callable(ready) and ready():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.25)
        raise StackError(
            f"{what} not ready within {self.start_timeout:g} s; logs in {self.log_dir}"
        )

    def _models_alive(self) -> bool:
        listed = _get_json(f"{self.api_url}/models")
        alive = (
            {
                m.get("name")
                for m in listed
                if isinstance(listed, list) and isinstance(m, dict) and m.get("status") == "alive"
            }
            if isinstance(listed, list)
            else set()
        )
        return {self.model_a, self.model_b} <= alive

    def start(self) -> Stack:
        """Start every process and wait until the gateway serves both models."""
        try:
            self._spawn(
                "registry",
                "registry",
                self._env(
                    REGISTRY_HOST="127.0.0.1",
                    REGISTRY_PORT=str(self.registry_port),
                    REGISTRY_KEY_PREFIX=self.key_prefix,
                ),
            )
            self._wait("registry", lambda: _get_json(f"{self.registry_url}/models") is not None)
            self._spawn("api", "api", self._env(API_HOST="127.0.0.1", API_PORT=str(self.api_port)))
            self._spawn("model_a", "models.model_a", self._env(MODEL_NAME=self.model_a))
            self._spawn("model_b", "models.model_b", self._env(MODEL_NAME=self.model_b))
            self._wait("gateway and models", self._models_alive)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM workers, then gateway and registry; kill what lingers; clean the brokers."""
        for name in ("model_a", "model_b", "api", "registry"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        self._clean_brokers()

    def _clean_brokers(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            keys = list(client.scan_iter(match=f"{self.key_prefix}*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        asyncio.run(self._delete_queues())

    async def _delete_queues(self) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            for model in (self.model_a, self.model_b):
                for queue in model_queues(model, "1"):
                    await channel.queue_delete(queue)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
