"""Conveyor's services, described once, with the environment each one gets.

``//:up``, the integration tests and the load-test stack run the services with an
:class:`Endpoints` of loopback URLs; ``docker-compose.yml`` is rendered from the same list with
:data:`COMPOSE_ENDPOINTS` by :mod:`tools.stack.compose` (a test keeps the file equal to it),
and the container test runs the same images with podman or Docker directly.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BROKERS",
    "COMPOSE_ENDPOINTS",
    "PROCESSES",
    "SERVICES",
    "Endpoints",
    "Port",
    "Service",
    "by_name",
]

_PY = "/usr/bin/python3.11"
_HTTP_HEALTH = (
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=4)"
)
_MODEL_HEALTH = (
    "import json, os, urllib.request; url = os.environ['REGISTRY_URL'] + '/models/{name}'; "
    "assert json.load(urllib.request.urlopen(url, timeout=4))['status'] == 'alive'"
)

API_PORT = 8000
REGISTRY_PORT = 8001


@dataclass(frozen=True)
class Endpoints:
    """Where the services find each other, and the address the HTTP services listen on.

    ``api_port`` / ``registry_port`` of None leave the services' defaults (8000, 8001).
    """

    amqp_url: str
    redis_url: str
    registry_url: str
    bind_host: str = "127.0.0.1"
    api_port: int | None = None
    registry_port: int | None = None

    @classmethod
    def local(cls, amqp_url: str, redis_url: str, api_port: int, registry_port: int) -> Endpoints:
        """Services as processes on this machine's loopback."""
        return cls(
            amqp_url=amqp_url,
            redis_url=redis_url,
            registry_url=f"http://127.0.0.1:{registry_port}",
            api_port=api_port,
            registry_port=registry_port,
        )

    @property
    def api_url(self) -> str:
        """The gateway's loopback URL."""
        return f"http://127.0.0.1:{self.api_port or API_PORT}"


COMPOSE_ENDPOINTS = Endpoints(
    amqp_url="amqp://guest:guest@rabbitmq:5672/",
    redis_url="redis://redis:6379/0",
    registry_url="http://registry:8001",
    bind_host="0.0.0.0",
)
"""The compose network: services reach the brokers and the registry by service name."""


@dataclass(frozen=True)
class Port:
    """A container port; ``publish`` renders it as a host port (default: the same number)."""

    container: int
    host_env: str = ""
    """The variable that moves the host port (``${CONVEYOR_API_PORT:-8000}``)."""
    publish: bool = True
    """False: published only by the opt-in ``docker-compose.brokers.yml``."""

    @property
    def compose(self) -> str:
        """The compose ``ports`` entry."""
        host = f"${{{self.host_env}:-{self.container}}}" if self.host_env else str(self.container)
        return f"{host}:{self.container}"


@dataclass(frozen=True)
class Service:
    """One service of the stack."""

    name: str
    image: str
    healthcheck: tuple[str, ...]
    module: str = ""
    """The Python module that runs it as a process (``python -m``); empty for the brokers."""
    uses: tuple[str, ...] = ()
    """Endpoints it is told about: ``amqp``, ``redis``, ``registry``."""
    listen: tuple[str, str] = ("", "")
    """``(host variable, port variable)`` of an HTTP service, e.g. ``("API_HOST", "API_PORT")``."""
    ports: tuple[Port, ...] = ()
    depends_on: tuple[str, ...] = ()
    image_env: str = ""
    start_period_seconds: int = 10

    @property
    def image_ref(self) -> str:
        """The image in compose syntax: ``${RABBITMQ_IMAGE:-conveyor/rabbitmq:dev}`` for brokers."""
        return f"${{{self.image_env}:-{self.image}}}" if self.image_env else self.image

    def environment(self, endpoints: Endpoints) -> dict[str, str]:
        """The variables this service runs with at ``endpoints``."""
        env = {}
        if "amqp" in self.uses:
            env["AMQP_URL"] = endpoints.amqp_url
        if "redis" in self.uses:
            env["REDIS_URL"] = endpoints.redis_url
        if "registry" in self.uses:
            env["REGISTRY_URL"] = endpoints.registry_url
        host_var, port_var = self.listen
        if host_var:
            env[host_var] = endpoints.bind_host
            port = endpoints.api_port if self.name == "api" else endpoints.registry_port
            if port is not None:
                env[port_var] = str(port)
        return env


def _model(name: str) -> Service:
    return Service(
        name=name,
        image=f"conveyor/{name}:dev",
        healthcheck=("CMD", _PY, "-c", _MODEL_HEALTH.format(name=name)),
        module=f"models.{name}",
        uses=("amqp", "redis", "registry"),
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
            Port(5672, "CONVEYOR_RABBITMQ_PORT", publish=False),
            Port(15672, "CONVEYOR_RABBITMQ_MANAGEMENT_PORT"),
        ),
        start_period_seconds=30,
    ),
    Service(
        name="redis",
        image="conveyor/redis:dev",
        image_env="REDIS_IMAGE",
        healthcheck=("CMD", "redis-cli", "ping"),
        ports=(Port(6379, "CONVEYOR_REDIS_PORT", publish=False),),
    ),
    Service(
        name="registry",
        image="conveyor/registry:dev",
        healthcheck=("CMD", _PY, "-c", _HTTP_HEALTH.format(port=REGISTRY_PORT)),
        module="registry",
        uses=("redis",),
        listen=("REGISTRY_HOST", "REGISTRY_PORT"),
        depends_on=("redis",),
    ),
    Service(
        name="api",
        image="conveyor/api:dev",
        healthcheck=("CMD", _PY, "-c", _HTTP_HEALTH.format(port=API_PORT)),
        module="api",
        uses=("amqp", "redis", "registry"),
        listen=("API_HOST", "API_PORT"),
        ports=(Port(API_PORT, "CONVEYOR_API_PORT"),),
        depends_on=("rabbitmq", "redis", "registry"),
    ),
    _model("model_a"),
    _model("model_b"),
)

BROKERS = frozenset({"rabbitmq", "redis"})
"""Services that are brokers (run by tools.stack.brokers, an operator in Kubernetes)."""

PROCESSES: tuple[Service, ...] = tuple(s for s in SERVICES if s.module)
"""The services that run as Python processes, in start order."""


def by_name(name: str) -> Service:
    """The service called ``name``."""
    for service in SERVICES:
        if service.name == name:
            return service
    raise KeyError(name)
