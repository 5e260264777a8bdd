"""The services of the compose stack, in the shape the manifest checks compare against.

One small adapter, :func:`stack_services`, so the source can change in one place. Today the
services are described once in ``tests/container/stack.py`` (``SERVICES``), which Bazel does not
let other packages depend on; ``docker-compose.yml`` is rendered from it and
``//tests/container:test_compose_file`` keeps the two equal, so the adapter reads that file.
When ``tools/stack/services.py`` lands, build the same :class:`StackService` values from its
``SERVICES`` instead (``service.image``, ``{p.container for p in service.ports}``,
``service.environment(COMPOSE_ENDPOINTS)``, ``service.healthcheck[1:]``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml  # type: ignore[import-untyped]

__all__ = ["BROKERS", "StackService", "stack_services"]

BROKERS = frozenset({"rabbitmq", "redis"})
"""Services that Kubernetes runs differently (an operator, Sentinel), not as Deployments."""

_HEALTH_PORT = re.compile(r"//127\.0\.0\.1:(\d+)/")


@dataclass(frozen=True)
class StackService:
    """One service as compose runs it."""

    name: str
    image: str
    ports: frozenset[int]
    """Container ports it listens on: published ones and the one its HTTP healthcheck probes."""
    env: Mapping[str, str]
    healthcheck: tuple[str, ...]
    """The exec-form healthcheck command, without ``CMD``."""

    @property
    def http_health(self) -> tuple[int, str] | None:
        """``(port, path)`` when the healthcheck GETs a URL on the service itself."""
        found = re.search(r"//127\.0\.0\.1:(\d+)(/[A-Za-z0-9_/]*)", " ".join(self.healthcheck))
        return (int(found.group(1)), found.group(2)) if found else None


def _container_port(mapping: str) -> int:
    return int(str(mapping).rsplit(":", 1)[-1].split("/")[0])


def stack_services(compose_file: Path) -> dict[str, StackService]:
    """The stack's services by name, read from ``docker-compose.yml``."""
    compose = yaml.safe_load(compose_file.read_text())
    services: dict[str, StackService] = {}
    for name, spec in compose["services"].items():
        image = re.sub(r"^\$\{[A-Z_]+:-(.*)\}$", r"\1", spec["image"])
        test = tuple(str(part) for part in spec.get("healthcheck", {}).get("test", []))
        ports = {_container_port(p) for p in spec.get("ports", [])}
        ports |= {int(port) for port in _HEALTH_PORT.findall(" ".join(test))}
        services[name] = StackService(
            name=name,
            image=image,
            ports=frozenset(ports),
            env={str(k): str(v) for k, v in (spec.get("environment") or {}).items()},
            healthcheck=test[1:] if test[:1] == ("CMD",) else test,
        )
    return services
