"""``docker-compose.yml`` and its opt-in ``docker-compose.brokers.yml``, rendered from
:mod:`tools.stack.services` (``python3 -m tools.stack.compose [--brokers]``)."""

from __future__ import annotations

import sys

from tools.stack.services import COMPOSE_ENDPOINTS, SERVICES, Service

__all__ = ["render_brokers_override", "render_compose"]

_HEADER = [
    "# Conveyor's stack of locally built images. Generated from tools/stack/services.py",
    "# (python3 -m tools.stack.compose > docker-compose.yml); a test keeps them in sync.",
    "# Load the images first: bazel run //:images. Official broker images instead of ours:",
    "#   RABBITMQ_IMAGE=rabbitmq:3-management REDIS_IMAGE=redis:7 docker compose up",
    "# The brokers are reached on the compose network, so this runs beside brokers already",
    "# listening on the host's 5672/6379. To publish them too:",
    "#   docker compose -f docker-compose.yml -f docker-compose.brokers.yml up",
    "# Host ports: CONVEYOR_API_PORT (8000), CONVEYOR_GRPC_PORT (8081, the gateway's gRPC),",
    "# CONVEYOR_RABBITMQ_MANAGEMENT_PORT (15672); with the brokers file CONVEYOR_RABBITMQ_PORT",
    "# (5672), CONVEYOR_REDIS_PORT (6379).",
    "# More model_a workers: docker compose up --scale model_a=3 (see docs/images.md).",
    "# Prometheus too (conveyor/prometheus:dev, on CONVEYOR_PROMETHEUS_PORT, 9090), scraping the",
    "# gateway, the registry and every worker: docker compose --profile monitoring up",
    "# That profile runs traceview too (conveyor/traceview:dev: OTLP on CONVEYOR_TRACEVIEW_PORT,",
    "# 4318, and CONVEYOR_TRACEVIEW_GRPC_PORT, 4317; its viewer at http://localhost:4318/); to",
    "# send it the services' spans see docs/observability.md (Traces).",
]


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _service(service: Service) -> list[str]:
    lines = [f"  {service.name}:", f"    image: {_quote(service.image_ref)}"]
    if service.profiles:
        lines.append(f"    profiles: [{', '.join(_quote(p) for p in service.profiles)}]")
    published = [port.compose for port in service.ports if port.publish]
    if published:
        lines.append("    ports:")
        lines += [f"      - {_quote(port)}" for port in published]
    env = service.environment(COMPOSE_ENDPOINTS)
    if env:
        lines.append("    environment:")
        lines += [f"      {key}: {_quote(value)}" for key, value in sorted(env.items())]
    if service.depends_on:
        # A dependency may go away later (or podman-compose 1.0 may start a service before
        # its dependencies are healthy): the apps exit on a lost broker and are restarted.
        lines += ["    restart: on-failure"]
        lines.append("    depends_on:")
        for dependency in service.depends_on:
            lines += [f"      {dependency}:", "        condition: service_healthy"]
    test = ", ".join(_quote(part) for part in service.healthcheck)
    lines += [
        "    healthcheck:",
        f"      test: [{test}]",
        "      interval: 5s",
        "      timeout: 5s",
        "      retries: 10",
        f"      start_period: {service.start_period_seconds}s",
    ]
    return lines


def render_compose(services: tuple[Service, ...] = SERVICES) -> str:
    """The text of ``docker-compose.yml`` for ``services``."""
    lines = [*_HEADER, "services:"]
    for service in services:
        lines += _service(service)
    lines += ["networks:", "  default:", "    name: conveyor"]
    return "\n".join(lines) + "\n"


def render_brokers_override(services: tuple[Service, ...] = SERVICES) -> str:
    """The text of ``docker-compose.brokers.yml``: publishes the ports left unpublished."""
    lines = [
        "# Opt-in: also publish the brokers' ports on the host (they must be free there).",
        "# Generated from tools/stack/services.py (python3 -m tools.stack.compose --brokers).",
        "#   docker compose -f docker-compose.yml -f docker-compose.brokers.yml up",
        "services:",
    ]
    for service in services:
        hidden = [port.compose for port in service.ports if not port.publish]
        if hidden:
            lines += [f"  {service.name}:", "    ports:"]
            lines += [f"      - {_quote(port)}" for port in hidden]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_brokers_override() if "--brokers" in sys.argv[1:] else render_compose(), end="")
