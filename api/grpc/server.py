"""The gateway's gRPC server: built and started in the gateway's lifespan, stopped with it.

One ``grpc.aio`` server per gateway process, on the process's event loop, listening on
``API_HOST:GRPC_PORT`` (``GRPC_PORT=0``: none). It serves

- ``inference.GRPCInferenceService`` (``api.grpc.inference``) over the app's catalog,
  dispatcher, admission (``MAX_INFLIGHT``), API keys and metrics;
- ``grpc.health.v1.Health`` (``api.grpc.health``);
- server reflection (``grpc.reflection.v1alpha``), listing the three services.

Messages are bounded both ways by ``MAX_BODY_BYTES`` (a larger one is RESOURCE_EXHAUSTED, from
gRPC itself). With ``API_WORKERS`` above one every process binds the port with
``SO_REUSEPORT`` and the kernel spreads connections across them, as for HTTP; with one process
the port is bound exclusively, so a second gateway on the same port fails to start instead of
sharing it. On shutdown the server takes no new call and gives the calls in progress up to
``GRACE_SECONDS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from api.config import Settings
from api.edge import Admission
from api.grpc.edge import CallEdge
from api.grpc.health import Health, failing_dependencies
from api.grpc.inference import SERVICE, InferenceServicer, Limits
from api.oip.extensions import ExtensionsView
from api.oip.ports import Catalog, Dispatcher
from conveyor.metrics import GatewayMetrics
from proto.oip import grpc_service_pb2_grpc

__all__ = ["GRACE_SECONDS", "GrpcServer", "build_server", "start_grpc"]

logger = logging.getLogger(__name__)

GRACE_SECONDS: Final = 30.0
"""How long calls in progress may finish once the gateway stops (as HTTP requests)."""

HEALTH_SERVICE: Final = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class GrpcServer:
    """A started server and the port it listens on."""

    def __init__(self, server: Any, port: int) -> None:
        self.server = server
        self.port = port

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        """Take no new call; wait up to ``grace`` seconds for the calls in progress."""
        await self.server.stop(grace)


def build_server(
    *,
    catalog: Catalog,
    dispatcher: Dispatcher,
    admission: Admission,
    settings: Settings,
    metrics: GatewayMetrics | None = None,
    extensions: Callable[[], ExtensionsView | None] = lambda: None,
    version: str = "1",
) -> Any:
    """A ``grpc.aio`` server with the three services, not yet bound nor started."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            # Answers are not bounded, as on REST: an identity model's answer to a request at
            # the limit is bigger than it.
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1 if settings.api_workers > 1 else 0),
        ]
    )
    edge = CallEdge(
        admission, api_keys=settings.api_keys, retry_after=settings.retry_after, metrics=metrics
    )
    servicer = InferenceServicer(
        catalog=catalog,
        dispatcher=dispatcher,
        edge=edge,
        limits=Limits(settings.default_timeout, settings.max_timeout),
        extensions=extensions,
        version=version,
    )
    grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)

    async def ready() -> bool:
        return not await failing_dependencies(catalog, dispatcher)

    health_pb2_grpc.add_HealthServicer_to_server(Health(ready, [SERVICE]), server)
    reflection.enable_server_reflection((SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    return server


async def start_grpc(app: FastAPI) -> GrpcServer | None:
    """Start the gateway's gRPC server over the app's state (its lifespan has set the
    catalog and the dispatcher); None when ``GRPC_PORT`` is 0. Raise ``RuntimeError`` when
    the port cannot be bound."""
    settings: Settings = app.state.settings
    if not settings.grpc_port:
        return None
    state = app.state
    server = build_server(
        catalog=state.catalog,
        dispatcher=state.dispatcher,
        admission=state.admission,
        settings=settings,
        metrics=state.metrics,
        # Read at each call: the extensions are the gateway's once its lifespan made them.
        extensions=lambda: getattr(state, "extensions", None),
        version=app.version,
    )
    host = f"[{settings.api_host}]" if ":" in settings.api_host else settings.api_host
    address = f"{host}:{settings.grpc_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as e:
        raise RuntimeError(f"gRPC cannot listen on {address}: {e}") from e
    await server.start()
    logger.info("serving gRPC on %s", address)
    return GrpcServer(server, port)
