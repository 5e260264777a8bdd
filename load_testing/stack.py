"""Start a private Conveyor stack (registry, gateway, model_a, model_b) as real processes.

A scenario may add workers of its own models (``extra_models``: a label -> the module run with
``python -m``); each is named ``<tag>_<label>`` and started and stopped with the others.

Built on ``tools/stack``: the service list and its environment, processes (``python -m``
with this process's import roots, so it works from a virtualenv and from Bazel runfiles),
free ports and waiting. Model names and the registry's Redis key prefix carry a unique tag, so
the stack shares nothing with another stack on the same brokers. :meth:`Stack.stop` sends
SIGTERM (workers first), then deletes the stack's registry keys and model queues.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

import httpx

from conveyor.protocol import declared_queues
from tools.stack.brokers import DEFAULT_URLS
from tools.stack.cleanup import delete_keys, delete_queues
from tools.stack.ports import free_port
from tools.stack.probes import http_ok, models_alive
from tools.stack.process import Service, stop_all
from tools.stack.services import Endpoints, by_name
from tools.stack.waiting import wait_until

__all__ = ["Stack", "StackError", "environment", "free_port"]

RESULT_TTL_S: Final = 300


class StackError(Exception):
    """The stack did not come up (or a process died); the message names the log to read."""


@dataclass
class Stack:
    """A running stack; use as a context manager, or call :meth:`start` and :meth:`stop`."""

    log_dir: Path
    amqp_url: str = field(
        default_factory=lambda: os.environ.get("AMQP_URL", DEFAULT_URLS["rabbitmq"])
    )
    redis_url: str = field(
        default_factory=lambda: os.environ.get("REDIS_URL", DEFAULT_URLS["redis"])
    )
    tag: str = field(default_factory=lambda: f"lt{uuid.uuid4().hex[:8]}")
    start_timeout: float = 120.0
    registry_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    """The gateway's ``GRPC_PORT`` (its gRPC front end, where the gateway has one)."""
    result_ttl: int = RESULT_TTL_S
    """Seconds results are kept in Redis (``RESULT_TTL``): big results want a short time."""
    extra_models: dict[str, str] = field(default_factory=dict)
    """Workers of further models: a label (not ``api``, ``registry``, ``model_a`` or
    ``model_b``) -> the module to run."""
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    """Environment of each extra model's worker beyond the stack's (a label -> variables)."""
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def model_a(self) -> str:
        """This stack's name for model_a."""
        return f"{self.tag}_model_a"

    @property
    def model_b(self) -> str:
        """This stack's name for model_b."""
        return f"{self.tag}_model_b"

    def model_name(self, label: str) -> str:
        """This stack's name for the extra model ``label``."""
        return f"{self.tag}_{label}"

    @property
    def grpc_target(self) -> str:
        """``host:port`` of the gateway's gRPC front end."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def endpoints(self) -> Endpoints:
        """Where the services listen and find each other."""
        return Endpoints.local(self.amqp_url, self.redis_url, self.api_port, self.registry_port)

    @property
    def api_url(self) -> str:
        """Base URL of the gateway."""
        return self.endpoints.api_url

    @property
    def registry_url(self) -> str:
        """Base URL of the registry."""
        return self.endpoints.registry_url

    @property
    def key_prefix(self) -> str:
        """The registry's Redis key prefix for this stack."""
        return f"conveyor:registry:{self.tag}:"

    def _spawn(self, service: str, **extra: str) -> None:
        spec = by_name(service)
        env = {
            **spec.environment(self.endpoints),
            "RESULT_TTL": str(self.result_ttl),
            "DEFAULT_RESULT_TTL": str(self.result_ttl),
            **extra,
        }
        self.services[service] = Service(spec.module, env, self.log_dir, service)

    def _spawn_extra(self, label: str, module: str) -> None:
        env = {
            **by_name("model_a").environment(self.endpoints),  # a worker's endpoints
            "DEFAULT_RESULT_TTL": str(self.result_ttl),
            "MODEL_NAME": self.model_name(label),
            **self.extra_env.get(label, {}),
        }
        self.services[label] = Service(module, env, self.log_dir, label)

    def _wait(self, what: str, ready: str) -> None:
        def check() -> bool:
            for name, service in self.services.items():
                if not service.alive():
                    raise StackError(
                        f"{name} exited with {service.returncode}; see {service.log_path}"
                    )
            return self._models_alive() if ready == "models" else self._registry_up()

        try:
            wait_until(check, self.start_timeout, interval=0.25, what=what,
                       transient=(httpx.HTTPError, OSError, ValueError))  # fmt: skip
        except TimeoutError as e:
            raise StackError(f"{e}; logs in {self.log_dir}") from e

    def _registry_up(self) -> bool:
        return http_ok(f"{self.registry_url}/models")

    def _models_alive(self) -> bool:
        extra = tuple(self.model_name(label) for label in self.extra_models)
        return models_alive(self.api_url, (self.model_a, self.model_b, *extra))

    def start(self) -> Stack:
        """Start every process and wait until the gateway serves both models."""
        try:
            self._spawn("registry", REGISTRY_KEY_PREFIX=self.key_prefix)
            self._wait("registry", "registry")
            self._spawn("api", GRPC_PORT=str(self.grpc_port))
            self._spawn("model_a", MODEL_NAME=self.model_a)
            self._spawn("model_b", MODEL_NAME=self.model_b)
            for label, module in self.extra_models.items():
                self._spawn_extra(label, module)
            self._wait("gateway and models", "models")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM workers, then gateway and registry; kill what lingers; clean the brokers."""
        running = self.services
        workers = ("model_a", "model_b", *self.extra_models)
        stop_all([running[n] for n in workers if n in running])
        stop_all([running[n] for n in ("api", "registry") if n in running])
        self.services = {}
        self._clean_brokers()

    def _clean_brokers(self) -> None:
        delete_keys(self.redis_url, f"{self.key_prefix}*")
        extra = tuple(self.model_name(label) for label in self.extra_models)
        models = (self.model_a, self.model_b, *extra)
        delete_queues(self.amqp_url, (q for m in models for q in declared_queues(m, "1")))

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for what starts inside (a stack passes its environment on to
    its services), and restore them after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
