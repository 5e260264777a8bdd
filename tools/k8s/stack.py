"""The services of the compose stack, in the shape the manifest checks compare against.

One small adapter, :func:`stack_services`, over the one description of the services,
``tools/stack/services.py`` (``docker-compose.yml`` is rendered from it, and
``//tests/container:test_compose_file`` keeps the file equal to that rendering).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tools.stack.services import BROKERS, COMPOSE_ENDPOINTS, SERVICES

__all__ = ["BROKERS", "StackService", "stack_services"]

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


def stack_services(compose_file: Path | None = None) -> dict[str, StackService]:
    """The stack's services by name, as compose runs them.

    ``compose_file`` is accepted for older callers and not read: the file is a rendering of
    ``tools.stack.services``, which this reads directly.
    """
    services: dict[str, StackService] = {}
    # Opt-in compose profiles (Prometheus of `monitoring`) have no manifests: the cluster's own
    # monitoring scrapes the pods.
    for service in (s for s in SERVICES if not s.profiles):
        test = service.healthcheck
        ports = {port.container for port in service.ports}
        ports |= {int(port) for port in _HEALTH_PORT.findall(" ".join(test))}
        services[service.name] = StackService(
            name=service.name,
            image=service.image,
            ports=frozenset(ports),
            env=service.environment(COMPOSE_ENDPOINTS),
            healthcheck=test[1:] if test[:1] == ("CMD",) else test,
        )
    return services
