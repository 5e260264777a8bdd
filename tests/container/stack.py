"""The compose stack, described once: ``docker-compose.yml`` is rendered from it (and a test keeps
the two in sync), and the container test runs the same services with podman or Docker directly
(no compose tool or YAML parser is needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SERVICES", "Service", "render_compose"]

_PY = "/usr/bin/python3.11"
_HTTP_HEALTH = (
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=4)"
)
_MODEL_HEALTH = (
    "import json, os, urllib.request; url = os.environ['REGISTRY_URL'] + '/models/{name}'; "
    "assert json.load(urllib.request.urlopen(url, timeout=4))['status'] == 'alive'"
)
_COMMON_ENV = {
    "AMQP_URL": "amqp://guest:guest@rabbitmq:5672/",
    "REDIS_URL": "redis://redis:6379/0",
    "REGISTRY_URL": "http://registry:8001",
}


@dataclass(frozen=True)
class Service:
    """One service of the stack."""

    name: str
    image: str
    healthcheck: tuple[str, ...]
    ports: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    image_env: str = ""
    start_period_seconds: int = 10

    @property
    def image_ref(self) -> str:
        """The image in compose syntax: ``${RABBITMQ_IMAGE:-conveyor/rabbitmq:dev}`` for brokers."""
        return f"${{{self.image_env}:-{self.image}}}" if self.image_env else self.image


def _model(name: str) -> Service:
    return Service(
        name=name,
        image=f"conveyor/{name}:dev",
        healthcheck=("CMD", _PY, "-c", _MODEL_HEALTH.format(name=name)),
        env=dict(_COMMON_ENV),
        depends_on=("rabbitmq", "redis", "registry"),
    )


SERVICES: tuple[Service, ...] = (
    Service(
        name="rabbitmq",
        image="conveyor/rabbitmq:dev",
        image_env="RABBITMQ_IMAGE",
        # `ping` succeeds before the AMQP listener accepts connections; this waits for it.
        healthcheck=("CMD", "rabbitmq-diagnostics", "-q", "check_port_connectivity"),
        ports=(
            "${CONVEYOR_RABBITMQ_PORT:-5672}:5672",
            "${CONVEYOR_RABBITMQ_MANAGEMENT_PORT:-15672}:15672",
        ),
        start_period_seconds=30,
    ),
    Service(
        name="redis",
        image="conveyor/redis:dev",
        image_env="REDIS_IMAGE",
        healthcheck=("CMD", "redis-cli", "ping"),
        ports=("${CONVEYOR_REDIS_PORT:-6379}:6379",),
    ),
    Service(
        name="registry",
        image="conveyor/registry:dev",
        healthcheck=("CMD", _PY, "-c", _HTTP_HEALTH.format(port=8001)),
        env={"REDIS_URL": _COMMON_ENV["REDIS_URL"], "REGISTRY_HOST": "0.0.0.0"},
        depends_on=("redis",),
    ),
    Service(
        name="api",
        image="conveyor/api:dev",
        healthcheck=("CMD", _PY, "-c", _HTTP_HEALTH.format(port=8000)),
        ports=("${CONVEYOR_API_PORT:-8000}:8000",),
        env={**_COMMON_ENV, "API_HOST": "0.0.0.0"},
        depends_on=("rabbitmq", "redis", "registry"),
    ),
    _model("model_a"),
    _model("model_b"),
)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_compose(services: tuple[Service, ...] = SERVICES) -> str:
    """Returns the text of ``docker-compose.yml`` for ``services``."""
    lines = [
        "# Conveyor's stack of locally built images. Generated from tests/container/stack.py",
        "# (python3 -m tests.container.stack > docker-compose.yml); a test keeps them in sync.",
        "# Load the images first: bazel run //:images. Official broker images instead of ours:",
        "#   RABBITMQ_IMAGE=rabbitmq:3-management REDIS_IMAGE=redis:7 docker compose up",
        "# Host ports: CONVEYOR_API_PORT (8000), CONVEYOR_RABBITMQ_PORT (5672),",
        "# CONVEYOR_RABBITMQ_MANAGEMENT_PORT (15672), CONVEYOR_REDIS_PORT (6379).",
        "# More model_a workers: docker compose up --scale model_a=3 (see docs/images.md).",
        "services:",
    ]
    for service in services:
        lines += [f"  {service.name}:", f"    image: {_quote(service.image_ref)}"]
        if service.ports:
            lines.append("    ports:")
            lines += [f"      - {_quote(port)}" for port in service.ports]
        if service.env:
            lines.append("    environment:")
            lines += [f"      {key}: {_quote(value)}" for key, value in sorted(service.env.items())]
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
    lines += ["networks:", "  default:", "    name: conveyor"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_compose(), end="")
