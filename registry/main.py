"""The registry application: ``create_app()``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from conveyor import tracing
from conveyor.metrics import RegistryMetrics
from conveyor.redis import redis_client_for
from conveyor.tracing_asgi import ServerSpans
from registry import errors
from registry.config import Settings
from registry.routes import health, instances, metrics, models
from registry.store import RegistryStore

UNTRACED_ROUTES = frozenset({("PUT", "/models/{name}/instances/{instance_id}")})
"""Requests the registry does not trace: an instance's heartbeat."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the registry; its Redis connection opens in its lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = (
            redis_client_for(settings, max_connections=64)
            if settings.redis_sentinels
            else aioredis.from_url(settings.redis_url)
        )
        app.state.settings = settings
        app.state.store = RegistryStore(
            client, settings.registry_key_prefix, settings.liveness_window
        )
        try:
            yield
        finally:
            await client.aclose()
            tracing.flush()  # the spans still held leave before the process does

    app = FastAPI(
        title="Conveyor registry",
        version="1",
        description="Which models exist, their schemas, and which instances are alive.",
        lifespan=lifespan,
    )
    app.state.metrics = RegistryMetrics()
    errors.install(app)
    for module in (instances, models):
        app.include_router(module.router, responses=errors.REDIS_DOWN)
    for module in (health, metrics):
        app.include_router(module.router)
    # A span per request when tracing is on; not the workers' heartbeats (a few a second).
    app.add_middleware(ServerSpans, route_of=route_of, untraced_routes=UNTRACED_ROUTES)
    return app


def route_of(path: str) -> str:
    """A registry path's route template: model names and instance ids replaced."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "models":
        parts[2] = "{name}"
        if len(parts) >= 5 and parts[3] == "instances":
            parts[4] = "{instance_id}"
    return "/".join(parts)
