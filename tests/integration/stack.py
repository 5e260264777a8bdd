"""Conveyor's services as real processes on free ports, for integration tests.

Built on ``tools/stack`` (processes, ports, waiting, the service list). Each ``Stack`` has its
own registry key prefix and its own model names, so tests never collide even on shared
brokers; the brokers come from ``AMQP_URL`` / ``REDIS_URL``, read when a ``Stack`` is made
(the test target's broker plugin sets them at session start). ``close()`` stops every process
it started and deletes the queues and keys it created.
"""

import os
import tempfile
import uuid
from pathlib import Path
from typing import Self

import httpx

from conveyor.protocol import declared_queues, stats_key
from tools.stack.brokers import DEFAULT_URLS
from tools.stack.cleanup import delete_keys, delete_queues
from tools.stack.ports import free_port
from tools.stack.probes import http_ok
from tools.stack.process import Service, stop_all
from tools.stack.services import Endpoints, by_name
from tools.stack.waiting import wait_until

__all__ = [
    "AMQP_URL",
    "FLAKY_MODEL",
    "REDIS_URL",
    "SLOW_MODEL",
    "Served",
    "Service",
    "Stack",
    "free_port",
    "wait_until",
]

AMQP_URL = os.environ.get("AMQP_URL", DEFAULT_URLS["rabbitmq"])
"""The brokers when this module was imported; a ``Stack`` reads the environment again."""
REDIS_URL = os.environ.get("REDIS_URL", DEFAULT_URLS["redis"])

START_TIMEOUT = 60.0
"""Generous: a loaded 2-core machine may take long to import scikit-learn."""
# The test-only model whose tasks take a while (tests/integration/slow_model.py).
SLOW_MODEL = "tests.integration.slow_model"
# The test-only model that fails as told (tests/integration/flaky_model.py).
FLAKY_MODEL = "tests.integration.flaky_model"


class Stack:
    """A registry and a gateway on free ports, plus any workers a test starts."""

    def __init__(self, liveness_window: float = 5.0, **gateway_env: str) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"conveyor-{self.id}-"))
        self.key_prefix = f"test:{self.id}:registry:"
        self.amqp_url = os.environ.get("AMQP_URL", DEFAULT_URLS["rabbitmq"])
        self.redis_url = os.environ.get("REDIS_URL", DEFAULT_URLS["redis"])
        self.registry_port = free_port()
        self.api_port = free_port()
        self.endpoints = Endpoints.local(
            self.amqp_url, self.redis_url, self.api_port, self.registry_port
        )
        self.registry_url = self.endpoints.registry_url
        self.api_url = self.endpoints.api_url
        self.models: set[str] = set()
        self.workers: list[Service] = []
        self.registry = Service(
            "registry",
            {
                **by_name("registry").environment(self.endpoints),
                "REGISTRY_KEY_PREFIX": self.key_prefix,
                "LIVENESS_WINDOW": str(liveness_window),
            },
            self.log_dir,
            "registry",
        )
        self.gateway = Service(
            "api",
            {**by_name("api").environment(self.endpoints), **gateway_env},
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
            {**by_name("model_a").environment(self.endpoints), "MODEL_NAME": model, **env},
            self.log_dir,
            f"{model}-{len(self.workers)}",
        )
        self.workers.append(worker)
        self.models.add(model)

        def registered() -> bool:
            if not worker.alive():
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
            if not service.alive():
                raise AssertionError(f"{service.label} exited early:\n{service.log()}")
            return http_ok(url)

        wait_until(up, START_TIMEOUT, what=f"{service.label} ready")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process, delete this stack's queues (their delay lanes too) and Redis keys
        (its models' statistics too)."""
        self.http.close()
        stop_all(self.workers)
        stop_all([self.gateway, self.registry])
        queues = (q for m in self.models for q in declared_queues(m, "1"))
        delete_queues(self.amqp_url, queues)
        delete_keys(self.redis_url, f"test:{self.id}:*")
        for model in self.models:
            delete_keys(self.redis_url, stats_key(model, "*"))


class Served(Stack):
    """A stack serving the two example models, model_a and model_b, under unique names."""

    def __init__(self, liveness_window: float = 5.0, **gateway_env: str) -> None:
        super().__init__(liveness_window, **gateway_env)
        try:
            self.model_a = self.model_name("model_a")
            self.model_b = self.model_name("model_b")
            self.start_worker("models.model_a", self.model_a)
            self.start_worker("models.model_b", self.model_b)
        except BaseException:
            self.close()
            raise
