"""Conveyor's services, described once, with the environment each one gets.

``//:up``, the integration tests and the load-test stack run the services with an
:class:`Endpoints` of loopback URLs; ``docker-compose.yml`` is rendered from the same list with
:data:`COMPOSE_ENDPOINTS` by :mod:`tools.stack.compose` (a test keeps the file equal to it),
and the container test runs the same images with podman or Docker directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "BROKERS",
    "COMPOSE_ENDPOINTS",
    "GRPC_PORT",
    "METRICS_PORT",
    "PROCESSES",
    "PROMETHEUS_PORT",
    "SERVICES",
    "TRACEVIEW_GRPC_PORT",
    "TRACEVIEW_PORT",
    "WORKERS",
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
GRPC_PORT = 8081
"""The gateway's gRPC port (the Open Inference Protocol) when ``GRPC_PORT`` is not set."""
REGISTRY_PORT = 8001
METRICS_PORT = 9200
"""A worker's ``GET /metrics`` port when ``METRICS_PORT`` is not set (each compose container's)."""
PROMETHEUS_PORT = 9090
TRACEVIEW_PORT = 4318
"""traceview's OTLP/HTTP port (its API and viewer too): OTLP's own default."""
TRACEVIEW_GRPC_PORT = 4317
"""traceview's OTLP/gRPC port: OTLP's own default."""


@dataclass(frozen=True)
class Endpoints:
    """Where the services find each other, and the address the HTTP services listen on.

    ``api_port`` / ``registry_port`` of None leave the services' defaults (8000, 8001), and
    ``grpc_port`` of None the gateway's gRPC port (8081); 0 turns the gateway's gRPC off.
    ``metrics_ports`` gives workers their ``METRICS_PORT`` by service name (several workers on
    one host need a port each); a worker not in it keeps the default (9200).
    ``traces_endpoint``, when set, is the OTLP/HTTP base URL every Python service exports its
    spans to (``OTEL_EXPORTER_OTLP_ENDPOINT``); ``traceview_port`` / ``traceview_grpc_port``
    move traceview's ports (None: 4318 and 4317).
    """

    amqp_url: str
    redis_url: str
    registry_url: str
    bind_host: str = "127.0.0.1"
    api_port: int | None = None
    registry_port: int | None = None
    metrics_ports: Mapping[str, int] = field(default_factory=dict)
    grpc_port: int | None = None
    traces_endpoint: str | None = None
    traceview_port: int | None = None
    traceview_grpc_port: int | None = None

    @classmethod
    def local(
        cls,
        amqp_url: str,
        redis_url: str,
        api_port: int,
        registry_port: int,
        metrics_ports: Mapping[str, int] | None = None,
        grpc_port: int = 0,
    ) -> Endpoints:
        """Services as processes on this machine's loopback. The gateway's gRPC is off unless
        ``grpc_port`` is given: stacks of tests run side by side, and gRPC binds its port
        with ``SO_REUSEPORT`` when the gateway runs several processes."""
        return cls(
            amqp_url=amqp_url,
            redis_url=redis_url,
            registry_url=f"http://127.0.0.1:{registry_port}",
            api_port=api_port,
            registry_port=registry_port,
            metrics_ports=dict(metrics_ports or {}),
            grpc_port=grpc_port,
        )

    @property
    def api_url(self) -> str:
        """The gateway's loopback URL."""
        return f"http://127.0.0.1:{self.api_port or API_PORT}"

    @property
    def grpc_target(self) -> str:
        """The gateway's gRPC address on the loopback (``host:port``, as gRPC clients take it)."""
        return f"127.0.0.1:{GRPC_PORT if self.grpc_port is None else self.grpc_port}"


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
    profiles: tuple[str, ...] = ()
    """Compose profiles that enable it (``monitoring``); empty: always part of the stack."""

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
            port = {
                "api": endpoints.api_port,
                "registry": endpoints.registry_port,
                "traceview": endpoints.traceview_port,
            }.get(self.name)
            if port is not None:
                env[port_var] = str(port)
        if self.name == "traceview" and endpoints.traceview_grpc_port is not None:
            env["TRACEVIEW_GRPC_PORT"] = str(endpoints.traceview_grpc_port)
        if endpoints.traces_endpoint and self.module and self.name != "traceview":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoints.traces_endpoint
        if self.name == "api" and endpoints.grpc_port is not None:
            env["GRPC_PORT"] = str(endpoints.grpc_port)
        if self.name in endpoints.metrics_ports:
            env["METRICS_HOST"] = endpoints.bind_host
            env["METRICS_PORT"] = str(endpoints.metrics_ports[self.name])
        return env

    @property
    def is_worker(self) -> bool:
        """True for a model's worker (it serves ``GET /metrics`` on ``METRICS_PORT``)."""
        return self.module.startswith("models.")


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
        ports=(Port(API_PORT, "CONVEYOR_API_PORT"), Port(GRPC_PORT, "CONVEYOR_GRPC_PORT")),
        depends_on=("rabbitmq", "redis", "registry"),
    ),
    _model("model_a"),
    _model("model_b"),
    _model("model_c"),
    # `docker compose --profile monitoring up`: scrapes the services above on the compose
    # network (deploy/monitoring/prometheus.yml, built into the image).
    Service(
        name="prometheus",
        image="conveyor/prometheus:dev",
        # The image has no HTTP client; promtool (same package) queries the server's API.
        healthcheck=(
            "CMD",
            "/usr/bin/promtool",
            "query",
            "instant",
            f"http://127.0.0.1:{PROMETHEUS_PORT}",
            "vector(1)",
        ),
        ports=(Port(PROMETHEUS_PORT, "CONVEYOR_PROMETHEUS_PORT"),),
        profiles=("monitoring",),
    ),
    # Receives the services' OpenTelemetry spans (OTLP) and shows them (docs/observability.md).
    # Compose cannot set a variable on other services by profile: docs/observability.md says
    # how to point them at it (OTEL_EXPORTER_OTLP_ENDPOINT=http://traceview:4318).
    Service(
        name="traceview",
        image="conveyor/traceview:dev",
        healthcheck=("CMD", _PY, "-c", _HTTP_HEALTH.format(port=TRACEVIEW_PORT)),
        module="traceview",
        listen=("TRACEVIEW_HOST", "TRACEVIEW_PORT"),
        ports=(
            Port(TRACEVIEW_PORT, "CONVEYOR_TRACEVIEW_PORT"),
            Port(TRACEVIEW_GRPC_PORT, "CONVEYOR_TRACEVIEW_GRPC_PORT"),
        ),
        profiles=("monitoring",),
    ),
)

BROKERS = frozenset({"rabbitmq", "redis"})
"""Services that are brokers (run by tools.stack.brokers, an operator in Kubernetes)."""

PROCESSES: tuple[Service, ...] = tuple(s for s in SERVICES if s.module and not s.profiles)
"""The services that always run as Python processes, in start order (the opt-in ones, of a
compose profile, are not among them: ``//:up --traces`` adds traceview)."""

WORKERS: tuple[Service, ...] = tuple(s for s in PROCESSES if s.is_worker)
"""The models' workers."""


def by_name(name: str) -> Service:
    """The service called ``name``."""
    for service in SERVICES:
        if service.name == name:
            return service
    raise KeyError(name)
