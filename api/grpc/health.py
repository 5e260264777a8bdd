"""``grpc.health.v1.Health`` for the gateway: SERVING while it can serve.

The gateway is ready, as ``GET /readyz`` and ``/v2/health/ready`` say, while RabbitMQ, Redis and
the registry answer. ``Check`` asks them at each call (a Kubernetes readiness probe calls it
every few seconds); ``Watch`` asks them every ``WATCH_SECONDS`` and sends the status each time
it changes. The services known are the server as a whole (``""``) and
``inference.GRPCInferenceService``; another name is NOT_FOUND for ``Check`` and
SERVICE_UNKNOWN for ``Watch``, as the health protocol says.
"""

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any, Final

import grpc
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from api.oip.ports import Catalog, Dispatcher

__all__ = ["WATCH_SECONDS", "Health", "failing_dependencies"]

WATCH_SECONDS: Final = 1.0
"""How often ``Watch`` asks whether the gateway is ready."""


async def failing_dependencies(catalog: Catalog, dispatcher: Dispatcher) -> list[str]:
    """The components the gateway needs that do not answer (none: it is ready)."""
    checks = {**await dispatcher.ready(), "registry": await catalog.ping()}
    return sorted(name for name, ok in checks.items() if not ok)


class Health:
    """The health service (register it with ``health_pb2_grpc.add_HealthServicer_to_server``)."""

    def __init__(
        self,
        ready: Callable[[], Awaitable[bool]],
        services: Iterable[str],
        watch_seconds: float = WATCH_SECONDS,
    ) -> None:
        self._ready = ready
        self._services = frozenset(["", *services])
        self._watch_seconds = watch_seconds

    async def _status(self) -> Any:
        ready = await self._ready()
        return HealthCheckResponse.SERVING if ready else HealthCheckResponse.NOT_SERVING

    async def Check(self, request: HealthCheckRequest, context: Any) -> HealthCheckResponse:
        """The status now."""
        if request.service not in self._services:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return HealthCheckResponse(status=await self._status())

    async def Watch(
        self, request: HealthCheckRequest, context: Any
    ) -> AsyncGenerator[HealthCheckResponse, None]:
        """The status, then each change of it, until the client goes away."""
        if request.service not in self._services:
            yield HealthCheckResponse(status=HealthCheckResponse.SERVICE_UNKNOWN)
            return
        last = None
        while True:
            status = await self._status()
            if status != last:
                yield HealthCheckResponse(status=status)
                last = status
            await asyncio.sleep(self._watch_seconds)
